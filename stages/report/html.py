"""``report.html``: one self-contained page (tables inline, plots as base64 PNG, no external files)."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from stages.report.table import COLUMNS, fmt

CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1500px;color:#222}
table{border-collapse:collapse;font-size:12px}th,td{border:1px solid #ccc;padding:3px 6px}
th{background:#eee}td.n{text-align:right}tr.front td:first-child{font-weight:bold}
.skip{color:#a40}img{max-width:100%;border:1px solid #ddd;margin:4px 0}code{background:#f4f4f4}"""


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).name)}" src="data:image/png;base64,{data}">'


image = _img          # for the sections other modules render (stages/report/photos_section.py)
esc = html.escape


def results_table(rows: list[dict], pareto: set[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for _, h, _ in COLUMNS)
    body = []
    for r in rows:
        cls = ' class="front"' if r.get("artifact") in pareto else ""
        cells = "".join(f'<td{"" if s == "s" else " class=n"}>{html.escape(fmt(r.get(k), s))}'
                        f'{" ★" if k == "artifact" and r.get("artifact") in pareto else ""}</td>'
                        for k, _, s in COLUMNS)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def kv_table(d: dict) -> str:
    return "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                               for k, v in d.items()) + "</table>"


def render(title: str, rows: list[dict], pareto: set[str], skipped: list[dict], figures: dict[str, Path],
           chains: dict[str, dict], facts: dict, notes: list[str], top: list[str] = (),
           bottom: list[str] = ()) -> str:
    """``top``: HTML sections (already escaped) after the facts (the JMMC table); ``bottom``: after the
    figures (seeds, real photos)."""
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>", kv_table(facts), *top]
    parts.append("<h2>Results</h2><p>One row per artifact, every one measured by the shared protocol "
                 "(shared/evaluation.py) on the same test images; ★ = on the AP-vs-bytes Pareto front. "
                 "Latency: ONNX Runtime on this host's CPU, median and p90, 1 thread and all threads.</p>")
    parts.append(results_table(rows, pareto))
    if chains:
        parts.append("<h2>Chain throughput: serial vs parallel</h2><p>Enhancer, denoiser and detector as separate "
                     "ONNX Runtime sessions; serial = one frame at a time through the three (the faster of 1 thread and "
                     "all threads per session); parallel = one thread per model with queues between them (pipelined "
                     "over frames); speed-up = parallel / best serial.</p><table><tr><th>chain</th>"
                     "<th>frames</th><th>fps serial</th><th>fps parallel</th><th>speed-up</th>"
                     "<th>threads/model serial</th><th>threads/model parallel</th><th>max |serial-parallel|</th></tr>")
        for g, c in chains.items():
            parts.append(f"<tr><td>{html.escape(g)}</td><td class=n>{c['frames']}</td>"
                         f"<td class=n>{c['serial_fps']:.1f}</td><td class=n>{c['parallel_fps']:.1f}</td>"
                         f"<td class=n>{c['speedup']:.2f}×</td><td class=n>{c['serial_threads_per_model']}</td>"
                         f"<td class=n>{c['parallel_threads_per_model']}</td>"
                         f"<td class=n>{c['max_abs_diff_serial_vs_parallel']:.2e}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Figures</h2>")
    for caption, path in figures.items():
        parts.append(f"<h3>{html.escape(caption)}</h3>{_img(path)}")
    parts += [b for b in bottom if b]
    parts.append("<h2>Skipped</h2>")
    if skipped:
        parts.append("<p>What did not run here, and why. Absence from the table is not a result.</p><ul>")
        parts += [f"<li class=skip><b>{html.escape(s['what'])}</b>: {html.escape(s['reason'])}</li>" for s in skipped]
        parts.append("</ul>")
    else:
        parts.append("<p>Nothing was skipped.</p>")
    if notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)
