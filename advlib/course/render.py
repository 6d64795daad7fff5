"""The report's blocks rendered as Markdown and as one self-contained HTML file (figures inlined).

A report is a list of blocks::

    ("h", level, text)   ("p", text)   ("warn", text)
    ("table", columns, rows, caption)   # rows: lists of cell texts, the first cell the row's label
    ("img", alt, path relative to the report, path on disk)

Text may use `code`, **bold** and _emphasis_.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from .. import tables


def render_md(blocks: list) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append("#" * b[1] + " " + b[2])
        elif kind == "p":
            out.append(b[1])
        elif kind == "warn":
            out.append(f"> **Warning:** {b[1]}")
        elif kind == "table":
            cols, rows, cap = b[1], b[2], b[3]
            out.append(tables.markdown(cols, rows) + (f"\n\n_{cap}_" if cap else ""))
        elif kind == "img":
            out.append(f"![{b[1]}]({b[2]})" if Path(b[3]).exists() else f"_(figure {b[1]}: {b[2]} is missing)_")
    return "\n\n".join(out) + "\n"


def _inline_html(text: str) -> str:
    s = html.escape(str(text), quote=False)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
    s = re.sub(r"(?<![\w/])_(.+?)_(?![\w/])", r"<em>\1</em>", s)
    return s


CSS = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #aaa;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #999;padding:3px 8px}
th{background:#eee}td{text-align:right}td:first-child{text-align:left}
caption{caption-side:bottom;font-size:.85em;color:#555;text-align:left;padding-top:3px}
.warn{background:#fff4d6;border-left:4px solid #e0a000;padding:.5em .8em}
img{max-width:100%;border:1px solid #ddd}figure{margin:.8em 0}figcaption{font-size:.85em;color:#555}
code{background:#f2f2f2;padding:0 3px}"""


def render_html(blocks: list, title: str) -> str:
    out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
           f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style></head><body>"]
    for b in blocks:
        kind = b[0]
        if kind == "h":
            out.append(f"<h{b[1]}>{_inline_html(b[2])}</h{b[1]}>")
        elif kind == "p":
            out.append(f"<p>{_inline_html(b[1])}</p>")
        elif kind == "warn":
            out.append(f"<p class=\"warn\"><strong>Warning:</strong> {_inline_html(b[1])}</p>")
        elif kind == "table":
            cols, rows, cap = b[1], b[2], b[3]
            t = ["<table>"]
            if cap:
                t.append(f"<caption>{_inline_html(cap)}</caption>")
            t.append("<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>")
            for r in rows:
                t.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>")
            t.append("</table>")
            out.append("\n".join(t))
        elif kind == "img":
            path = Path(b[3])
            if path.exists():
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                out.append(f"<figure><img alt=\"{html.escape(b[1])}\" src=\"data:image/png;base64,{data}\">"
                           f"<figcaption>{html.escape(b[1])}</figcaption></figure>")
            else:
                out.append(f"<p><em>(figure {html.escape(b[1])}: {html.escape(b[2])} is missing)</em></p>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"
