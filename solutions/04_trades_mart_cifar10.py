"""Reference answers for the exercises of notebook 04_trades_mart_cifar10 (plain PyTorch, no advlib)."""
import copy

import torch
import torch.nn.functional as F


def trades_loss(model, x, x_adv, y, beta):
    """Return CE(model(x), y) + beta * KL(softmax model(x) || softmax model(x_adv)), batchmean."""
    logits_clean, logits_adv = model(x), model(x_adv)
    # F.kl_div(input, target) = KL(target || .), with input given as log-probabilities
    kl = F.kl_div(F.log_softmax(logits_adv, dim=1), F.softmax(logits_clean, dim=1), reduction="batchmean")
    return F.cross_entropy(logits_clean, y) + beta * kl


def mart_loss(model, x, x_adv, y, beta):
    """Return MART's loss: boosted CE on x_adv + beta * mean_k KL(p(x_k) || p(x_adv_k)) * (1 - p_y(x_k))."""
    logits_clean, logits_adv = model(x), model(x_adv)
    p_adv = F.softmax(logits_adv, dim=1)
    # the strongest wrong class: the most probable class under p_adv, or the runner-up where that is y
    top2 = p_adv.topk(2, dim=1).indices
    wrong = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    boosted_ce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)
    p_nat = F.softmax(logits_clean, dim=1)
    true_p = p_nat.gather(1, y.unsqueeze(1)).squeeze(1)
    # KL(p_nat || p_adv) per example: the elementwise terms of F.kl_div summed over the classes
    kl = F.kl_div(torch.log(p_adv + 1e-12), p_nat, reduction="none").sum(dim=1)
    # weighted per example, then averaged over the batch; nothing detached (as in the MART code)
    return boosted_ce + beta * (kl * (1.0000001 - true_p)).mean()


def awp_step(model, optimizer, x_adv, y, gamma):
    """One step of AT-AWP: add gamma * ||w|| * g / ||g|| to each weight w with more than one dimension (g: its
    gradient of the cross-entropy on x_adv), train at the perturbed weights (zero_grad, backward, step), subtract
    the perturbation again; return the loss at the perturbed weights as a float."""
    weights = [p for p in model.parameters() if p.dim() > 1]  # conv kernels, linear matrices
    # the gradient on a copy (the AWP code's proxy): its forward pass in training mode updates the copy's
    # batch-norm statistics, not the model's
    proxy = copy.deepcopy(model)
    proxy_weights = [p for p in proxy.parameters() if p.dim() > 1]
    grads = torch.autograd.grad(F.cross_entropy(proxy(x_adv), y), proxy_weights)
    with torch.no_grad():
        # each layer moves up its gradient by gamma times its own norm (1e-20: the code's guard against g = 0)
        perturbation = [gamma * w.norm() / (g.norm() + 1e-20) * g for w, g in zip(weights, grads)]
        for w, v in zip(weights, perturbation):
            w.add_(v)
    loss = F.cross_entropy(model(x_adv), y)  # at the perturbed weights
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    with torch.no_grad():  # keep the optimizer's update, remove the perturbation
        for w, v in zip(weights, perturbation):
            w.sub_(v)
    return loss.item()
