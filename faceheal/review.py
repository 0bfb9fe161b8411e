"""`faceheal review OUT_DIR` (and `restore --review`): one static page to look at a whole run.

Reads the run's manifest (`OUT/.faceheal/manifest*.jsonl`) and writes `OUT/review/index.html` with
generated thumbnails: before, after, damage overlay (from the saved mask, or from what changed), a
before/after slider, per-face crops and predicted layouts, mask ratio, changed pixels, and the errors,
listed first. Plain HTML, CSS and a little JavaScript, no network: it opens from disk. Cards are
paged and images lazy-loaded so 10,000 photos stay usable.
"""
from __future__ import annotations

import html
import json
from pathlib import Path

import cv2
import numpy as np

from faceheal.images import read_image, to_rgb8, write_atomic

THUMB = 360
FACE_THUMB = 128


def load_manifest(out_dir: Path) -> list[dict]:
    """Latest record per input path across all manifests of the run (a resumed run appends)."""
    records: dict[str, dict] = {}
    for f in sorted((out_dir / ".faceheal").glob("manifest*.jsonl")):
        for line in f.read_text().splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
            if r.get("status") == "skipped" and r["path"] in records:
                continue
            records[r["path"]] = r
    return list(records.values())


def _thumb(rgb8: np.ndarray, side: int) -> np.ndarray:
    h, w = rgb8.shape[:2]
    s = min(1.0, side / max(h, w))
    return cv2.resize(rgb8, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else rgb8


def _write_jpeg(path: Path, rgb8: np.ndarray) -> None:
    ok, enc = cv2.imencode(".jpg", np.ascontiguousarray(rgb8[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    write_atomic(path, enc.tobytes())


def _overlay(rgb8: np.ndarray, mask: np.ndarray, left: np.ndarray | None = None) -> np.ndarray:
    """The damage in red over the photo; the damage left unrepaired, if any, in yellow."""
    out = rgb8.astype(np.float32)
    out[mask] = out[mask] * 0.35 + np.array([255, 40, 40], np.float32) * 0.65
    if left is not None:
        out[left] = out[left] * 0.2 + np.array([255, 230, 0], np.float32) * 0.8
    return out.astype(np.uint8)


def make_thumbnails(record: dict, out_dir: Path, index: int, layout_dir: Path | None) -> dict:
    """Thumbnails for one record; returns the card's data (relative image paths, numbers)."""
    tdir = out_dir / "review" / "thumbs"
    card = {"id": index, "path": record["path"], "output": record.get("output"), "status": record["status"],
            "error": record.get("error"), "faces": len([f for f in record.get("faces", []) if f.get("box")]),
            "mask_ratio": max([f.get("mask_ratio", 0) for f in record.get("faces", [])] or [0]),
            "pixels_changed": record.get("pixels_changed", 0), "seconds": record.get("seconds", 0),
            "damage_left": record.get("unrepaired_pixels", 0)}
    try:
        before = to_rgb8(read_image(record["path"]).display())
    except Exception:
        return card
    after = before
    if record.get("output") and Path(record["output"]).is_file():
        try:
            after = to_rgb8(read_image(record["output"]).display())
        except Exception:
            pass
    mask_file = None
    if record.get("output"):
        rel = Path(record["output"]).relative_to(out_dir) if Path(record["output"]).is_relative_to(out_dir) else None
        mask_file = out_dir / ".faceheal" / "masks" / rel.with_suffix(".png") if rel else None
    if mask_file is not None and mask_file.is_file():
        mask = cv2.imread(str(mask_file), cv2.IMREAD_GRAYSCALE) > 127
        card["mask_from"] = "damage mask"
    else:
        mask = np.zeros(before.shape[:2], bool) if after.shape != before.shape else np.any(after != before, axis=-1)
        card["mask_from"] = "changed pixels"
    if mask.shape != before.shape[:2]:
        mask = np.zeros(before.shape[:2], bool)
    left = None
    if card["damage_left"] and card["mask_from"] == "damage mask" and after.shape == before.shape:
        left = mask & np.all(after == before, axis=-1)  # damage the output still holds as it was
        card["overlay_label"] = "damage (left unrepaired in yellow)"
    names = {"before": _thumb(before, THUMB), "after": _thumb(after if after.shape == before.shape else before, THUMB),
             "overlay": _thumb(_overlay(before, mask, left), THUMB)}
    for key, img in names.items():
        _write_jpeg(tdir / f"{index:06d}_{key}.jpg", img)
        card[key] = f"thumbs/{index:06d}_{key}.jpg"
    card["w"], card["h"] = names["before"].shape[1], names["before"].shape[0]
    faces = []
    boxed = [(i, f) for i, f in enumerate(record.get("faces", [])) if f.get("box")]
    # the most damaged faces first; a group photo shows its 8 most damaged, the rest are counted
    boxed.sort(key=lambda t: -t[1].get("mask_ratio", 0))
    card["faces_not_shown"] = max(0, len(boxed) - 8)
    for i, f in boxed[:8]:
        x0, y0, x1, y1 = f["box"]
        pad = 0.25 * max(x1 - x0, y1 - y0)
        h, w = before.shape[:2]
        ya, yb, xa, xb = int(max(0, y0 - pad)), int(min(h, y1 + pad)), int(max(0, x0 - pad)), int(min(w, x1 + pad))
        if yb <= ya or xb <= xa:
            continue
        # the box as the report gives it, to copy into --face-boxes (a `not-face` line drops a false face)
        face = {"mask_ratio": f.get("mask_ratio", 0), "score": f.get("score"), "box": [round(v) for v in f["box"]],
                "given": bool(f.get("given"))}
        for key, img in (("before", before), ("after", after if after.shape == before.shape else before)):
            _write_jpeg(tdir / f"{index:06d}_face{i}_{key}.jpg", _thumb(img[ya:yb, xa:xb], FACE_THUMB))
            face[key] = f"thumbs/{index:06d}_face{i}_{key}.jpg"
        if layout_dir is not None:
            rel = Path(record["output"]).relative_to(out_dir) if record.get("output") else None
            lay = layout_dir / rel.parent / f"{rel.stem}.face{i}.layout.png" if rel else None
            if lay is not None and lay.is_file():
                img = cv2.imread(str(lay))[..., ::-1]
                _write_jpeg(tdir / f"{index:06d}_face{i}_layout.jpg", _thumb(img, FACE_THUMB))
                face["layout"] = f"thumbs/{index:06d}_face{i}_layout.jpg"
        faces.append(face)
    card["face_crops"] = faces
    return card


def build_review(out_dir: Path, layout_dir: Path | None = None, progress=None) -> Path:
    """Write OUT/review/index.html for the run in `out_dir`; returns its path."""
    out_dir = Path(out_dir)
    records = load_manifest(out_dir)
    if layout_dir is None:
        last = out_dir / ".faceheal" / "last-run.json"
        if last.is_file():
            recorded = json.loads(last.read_text()).get("parameters", {})
            ld = recorded.get("save_layout") or recorded.get("layout_dir")  # the latter: older runs
            layout_dir = Path(ld) if ld else None
    cards = []
    for i, r in enumerate(sorted(records, key=lambda r: r["path"])):
        cards.append(make_thumbnails(r, out_dir, i, layout_dir))
        if progress:
            progress()
    page = out_dir / "review" / "index.html"
    write_atomic(page, render_html(cards, str(out_dir)).encode())
    return page


def render_html(cards: list[dict], title: str) -> str:
    data = json.dumps(cards).replace("</", "<\\/")
    failed = [c for c in cards if c["status"] in ("error", "no-face")]
    failures = "".join(f"<li><code>{html.escape(c['path'])}</code>: {html.escape(c.get('error') or c['status'])}</li>"
                       for c in failed)
    summary = (f"{len(cards)} photos, {sum(c['faces'] for c in cards)} faces, "
               f"{sum(c['status'] in ('ok', 'partial') for c in cards)} restored "
               f"({sum(c['status'] == 'partial' for c in cards)} with damage left unrepaired), "
               f"{len(failed)} failed or without faces")
    return (_TEMPLATE.replace("%TITLE%", html.escape(title)).replace("%SUMMARY%", html.escape(summary))
            .replace("%FAILURES%", f"<section id='failures'><h2>Failures ({len(failed)})</h2><ul>{failures}</ul></section>" if failed else "")
            .replace("%DATA%", data))


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>faceheal review: %TITLE%</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#1d1f21;color:#e8e8e8}
header{position:sticky;top:0;background:#2a2d30;padding:8px 16px;z-index:2;display:flex;flex-wrap:wrap;gap:12px;align-items:center}
header h1{font-size:16px;margin:0 12px 0 0}
select,input,button{background:#3a3d41;color:#eee;border:1px solid #555;border-radius:4px;padding:3px 6px}
#failures{background:#4a2020;margin:12px 16px;padding:8px 16px;border-radius:6px}
#failures h2{font-size:15px;margin:4px 0}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(380px,1fr));gap:14px;padding:14px 16px}
.card{background:#2a2d30;border-radius:8px;padding:10px;outline:none;border:2px solid transparent}
.card.sel{border-color:#6aa9ff}
.card.bad{background:#3a2626}
.card h3{font-size:13px;margin:0 0 6px;word-break:break-all;font-weight:600}
.cmp{position:relative;display:inline-block;max-width:100%;cursor:ew-resize;line-height:0}
.cmp img{display:block;max-width:100%;height:auto}
.cmp .top{position:absolute;inset:0;overflow:hidden}
.cmp .top img{max-width:none}
.cmp .bar{position:absolute;top:0;bottom:0;width:2px;background:#6aa9ff}
.row{display:flex;gap:6px;margin-top:6px;flex-wrap:wrap}
.row img{width:88px;height:88px;object-fit:cover;border-radius:3px}
.meta{color:#aaa;font-size:12px;margin-top:4px}
.tabs button.on{background:#6aa9ff;color:#000}
nav{padding:0 16px 20px;display:flex;gap:8px;align-items:center}
</style></head><body>
<header><h1>faceheal review</h1><span id="summary">%SUMMARY%</span>
<label>sort <select id="sort"><option value="path">name</option><option value="mask">mask ratio</option>
<option value="faces">faces</option><option value="changed">pixels changed</option><option value="left">damage left</option><option value="errors">errors first</option></select></label>
<label>show <select id="filter"><option value="all">all</option><option value="errors">errors / no face</option>
<option value="restored">restored</option></select></label>
<input id="q" placeholder="filter by name" size="18">
<span class="meta">keys: j/k or arrows next/previous, b/a/m before/after/mask</span></header>
%FAILURES%
<main id="grid"></main>
<nav><button id="prev">previous page</button><span id="pageinfo"></span><button id="next">next page</button></nav>
<script id="data" type="application/json">%DATA%</script>
<script>
const ALL = JSON.parse(document.getElementById('data').textContent);
const PAGE = 60;
let view = [], page = 0, sel = 0;
function esc(s){return String(s).replace(/[&<>"']/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'}[c]));}
function apply(){
  const sort = document.getElementById('sort').value, filt = document.getElementById('filter').value;
  const q = document.getElementById('q').value.toLowerCase();
  view = ALL.filter(c => (filt === 'all' || (filt === 'errors' ? c.status === 'error' || c.status === 'no-face' : c.status === 'ok' || c.status === 'partial'))
                      && c.path.toLowerCase().includes(q));
  const bad = c => (c.status === 'error' || c.status === 'no-face') ? 0 : 1;
  const keys = {path: c => c.path, mask: c => -c.mask_ratio, faces: c => -c.faces, changed: c => -c.pixels_changed, left: c => -(c.damage_left || 0), errors: c => bad(c)};
  const k = keys[sort];
  view.sort((a, b) => { const x = k(a), y = k(b); return x < y ? -1 : x > y ? 1 : a.path < b.path ? -1 : 1; });
  page = 0; sel = 0; render();
}
function card(c, i){
  const bad = c.status === 'error' || c.status === 'no-face';
  let h = `<div class="card${bad ? ' bad' : ''}" tabindex="0" data-i="${i}"><h3>${esc(c.path)}</h3>`;
  if (c.before){
    h += `<div class="tabs"><button data-v="cmp" class="on">compare</button> <button data-v="before">before</button> `
       + `<button data-v="after">after</button> <button data-v="overlay">${esc(c.overlay_label || c.mask_from || 'mask')}</button></div>`
       + `<div class="cmp" data-view="cmp"><img class="base" loading="lazy" src="${c.after}" width="${c.w}" height="${c.h}" alt="after">`
       + `<div class="top" style="width:50%"><img loading="lazy" src="${c.before}" width="${c.w}" height="${c.h}" alt="before"></div>`
       + `<div class="bar" style="left:50%"></div></div>`;
  }
  h += `<div class="meta">${esc(c.status)} · ${c.faces} face(s) · max mask ratio ${(100*c.mask_ratio).toFixed(1)}% · `
     + `${c.pixels_changed} px changed · ${Number(c.seconds).toFixed(2)} s`
     + (c.damage_left ? ` · <b style="color:#ffd84a">${c.damage_left} damaged px left unrepaired</b>` : '') + '</div>';
  if (c.error) h += `<div class="meta" style="color:#ff9a9a">${esc(c.error)}</div>`;
  if (c.face_crops && c.face_crops.length){
    h += '<div class="row">';
    for (const f of c.face_crops){
      h += `<img loading="lazy" src="${f.before}" title="before, mask ${(100*f.mask_ratio).toFixed(1)}%, box ${(f.box || []).join(',')}${f.given ? ' (given)' : ''}" alt="face before">`
         + `<img loading="lazy" src="${f.after}" title="after" alt="face after">`;
      if (f.layout) h += `<img loading="lazy" src="${f.layout}" title="predicted semantic layout" alt="layout">`;
    }
    if (c.faces_not_shown) h += `<span class="meta">+${c.faces_not_shown} more faces</span>`;
    h += '</div>';
  }
  return h + '</div>';
}
function render(){
  const start = page * PAGE, items = view.slice(start, start + PAGE);
  document.getElementById('grid').innerHTML = items.map((c, j) => card(c, start + j)).join('');
  document.getElementById('pageinfo').textContent = view.length ? `${start + 1}-${start + items.length} of ${view.length}` : 'nothing to show';
  for (const el of document.querySelectorAll('.card')) wire(el);
  select(Math.min(sel, view.length - 1), false);
}
function wire(el){
  const c = view[+el.dataset.i]; if (!c || !c.before) return;
  const box = el.querySelector('.cmp'), top = box.querySelector('.top'), bar = box.querySelector('.bar'), base = box.querySelector('.base');
  const slide = e => { const r = box.getBoundingClientRect(); const p = Math.max(0, Math.min(1, (e.clientX - r.left) / r.width));
    top.style.width = (100*p) + '%'; bar.style.left = (100*p) + '%'; top.querySelector('img').style.width = r.width + 'px'; };
  box.addEventListener('mousemove', slide);
  box.addEventListener('click', slide);
  el.querySelectorAll('.tabs button').forEach(b => b.addEventListener('click', () => show(el, b.dataset.v)));
  el.addEventListener('click', () => select(+el.dataset.i - page * PAGE, false));
}
function show(el, v){
  const c = view[+el.dataset.i], box = el.querySelector('.cmp'); if (!box) return;
  const top = box.querySelector('.top'), bar = box.querySelector('.bar'), base = box.querySelector('.base');
  el.querySelectorAll('.tabs button').forEach(b => b.classList.toggle('on', b.dataset.v === v));
  if (v === 'cmp'){ base.src = c.after; top.style.display = bar.style.display = ''; }
  else { base.src = c[v]; top.style.display = bar.style.display = 'none'; }
}
function select(j, scroll = true){
  const cards = document.querySelectorAll('.card'); if (!cards.length) return;
  j = Math.max(0, Math.min(cards.length - 1, j)); sel = j;
  cards.forEach((el, k) => el.classList.toggle('sel', k === j));
  if (scroll) { cards[j].scrollIntoView({block: 'nearest'}); cards[j].focus(); }
}
document.addEventListener('keydown', e => {
  if (e.target.tagName === 'INPUT') return;
  const cards = document.querySelectorAll('.card');
  if (e.key === 'j' || e.key === 'ArrowRight' || e.key === 'ArrowDown'){
    if (sel + 1 >= cards.length && (page + 1) * PAGE < view.length){ page++; sel = 0; render(); select(0); } else select(sel + 1);
    e.preventDefault();
  } else if (e.key === 'k' || e.key === 'ArrowLeft' || e.key === 'ArrowUp'){
    if (sel === 0 && page > 0){ page--; render(); select(PAGE - 1); } else select(sel - 1);
    e.preventDefault();
  } else if ('bam'.includes(e.key) && cards[sel]){ show(cards[sel], {b: 'before', a: 'after', m: 'overlay'}[e.key]); }
});
document.getElementById('sort').onchange = apply;
document.getElementById('filter').onchange = apply;
document.getElementById('q').oninput = apply;
document.getElementById('prev').onclick = () => { if (page > 0){ page--; render(); } };
document.getElementById('next').onclick = () => { if ((page + 1) * PAGE < view.length){ page++; render(); } };
apply();
</script></body></html>
"""
