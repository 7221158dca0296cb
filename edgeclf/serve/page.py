"""The page served at ``/``: self-contained HTML, CSS and JavaScript (no CDN: a Pi is often offline).

With a camera source it shows the latest frame (polled JPEG) with the stable label, its score and
the FPS drawn over it, and the last label changes (Server-Sent Events). Without one it is an upload
page: pick or drop a photo, it is POSTed to ``/api/classify`` and the answer is drawn over it.
A ``?token=`` in the page's address is passed on to every request it makes.
"""

from __future__ import annotations

import html
import json
from typing import Any

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#111;color:#eee}
header{padding:.6em 1em;background:#222;font-size:.9em;color:#aaa}
main{display:flex;flex-wrap:wrap;gap:1em;padding:1em}
#view{position:relative;display:inline-block;background:#000;min-width:320px;min-height:240px}
#view img{display:block;max-width:90vw;max-height:75vh;min-width:320px}
#overlay{position:absolute;left:0;right:0;top:0;padding:.4em .6em;background:rgba(0,0,0,.6);white-space:nowrap;
  font-size:1.6em;font-weight:600}
#overlay .score,#overlay .fps{font-size:.7em;font-weight:400;color:#ccc;margin-left:.6em}
aside{min-width:16em}
#changes{list-style:none;padding:0;margin:0;font-size:.9em}
#changes li{padding:.2em 0;border-bottom:1px solid #333}
#error{color:#f77}
#drop{border:2px dashed #555;padding:1em;margin-bottom:.6em}
"""

_SCRIPT = """
const cfg = JSON.parse(document.getElementById('cfg').textContent);
const token = new URLSearchParams(location.search).get('token');
const q = (extra) => { const p = new URLSearchParams(extra || {}); if (token) p.set('token', token);
  const s = p.toString(); return s ? '?' + s : ''; };
const $ = (id) => document.getElementById(id);
function show(label, score, fps) {
  $('label').textContent = label === null || label === undefined ? '…' : label;
  $('score').textContent = score === null || score === undefined ? '' : score.toFixed(3);
  $('fps').textContent = fps === null || fps === undefined ? '' : fps.toFixed(1) + ' fps';
}
function addChange(c) {
  const li = document.createElement('li');
  const t = new Date(c.time * 1000).toLocaleTimeString();
  li.textContent = t + '  ' + (c.previous || '—') + ' → ' + c.label + ' (' + c.score.toFixed(2) + ')';
  $('changes').prepend(li);
  while ($('changes').children.length > 20) $('changes').lastChild.remove();
}
if (cfg.live) {
  const img = $('frame');
  const next = () => setTimeout(() => { img.src = '/api/frame.jpg' + q({t: Date.now()}); }, 100);
  img.onload = next; img.onerror = () => setTimeout(next, 900); next();
  const poll = async () => {
    try { const r = await fetch('/api/latest' + q()); const d = await r.json();
      if (d.latest) show(d.latest.label, d.latest.score, d.latest.fps); $('error').textContent = '';
    } catch (e) { $('error').textContent = 'server unreachable'; }
    setTimeout(poll, 250);
  };
  poll();
  const es = new EventSource('/api/events' + q());
  es.addEventListener('label-change', (e) => addChange(JSON.parse(e.data)));
} else {
  const classify = async (file) => {
    $('frame').src = URL.createObjectURL(file); show('…', null, null);
    const r = await fetch('/api/classify' + q(), {method: 'POST', body: file,
      headers: {'Content-Type': file.type || 'application/octet-stream'}});
    const d = await r.json();
    if (!r.ok) { $('error').textContent = d.error; show('—', null, null); return; }
    $('error').textContent = ''; show(d.label, d.score, null);
    addChange({time: Date.now() / 1000, previous: file.name, label: d.label, score: d.score || 0});
  };
  $('file').onchange = (e) => e.target.files[0] && classify(e.target.files[0]);
  const drop = $('drop');
  drop.ondragover = (e) => e.preventDefault();
  drop.ondrop = (e) => { e.preventDefault(); if (e.dataTransfer.files[0]) classify(e.dataTransfer.files[0]); };
}
"""


def render_page(service: Any) -> str:
    """The page for this service (live when it has a source, else the upload page)."""
    clf = service.classifier
    live = service.options.source is not None
    title = f"edgeclf — {', '.join(clf.labels)}"
    threads = clf.session.threads
    about = html.escape(
        f"{clf.path.name} · {clf.format} · {clf.backend_name} · {threads} thread{'' if threads == 1 else 's'}"
    )
    cfg = json.dumps({"live": live}).replace("</", "<\\/")
    upload = "" if live else '<div id="drop">Drop a photo here or <input id="file" type="file" accept="image/*"></div>'
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><header>{about} · source: {html.escape(service.options.source or "uploads")}</header>
<main><section>{upload}<div id="view"><img id="frame" alt="latest frame">
<div id="overlay"><span id="label">…</span><span class="score" id="score"></span>
<span class="fps" id="fps"></span></div>
</div><div id="error"></div></section>
<aside><h3>{"Label changes" if live else "Results"}</h3><ul id="changes"></ul></aside></main>
<script type="application/json" id="cfg">{cfg}</script><script>{_SCRIPT}</script></body></html>
"""
