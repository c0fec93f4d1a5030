// netspec viewer: the shaped graph of a spec, blocks expanding and collapsing on click.
//
// Units: a node i (0..N-1), a scope j, encoded as NN + j, or a step k of an op drawn as a
// cluster of its steps (OpDef.parts: attention's projections, heads, out projection), encoded
// as NP + k. A scope is either collapsed (one box) or open (a frame holding its own units);
// so is an op with steps (one box, or a frame holding its steps). Each open scope is laid out on its
// own: its units ranked by longest path over the edges inside it, rank by rank, top to
// bottom; frames nest. Only boxes and edges near the visible part of the page are in the
// DOM (`render`), so the page stays light at any size. Spec text is set with textContent.
// Every edge carries the shape on it; `share:` pairs are dashed lines, never data flow.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("netspec-data").textContent);
  const S = D.scopes;
  const N = D.nodes;
  N.push({ name: "output", op: "output", label: "output", family: "input", attrs: {}, shape: D.output_shape,
           params: 0, macs: 0, chain: [], inputs: [D.output] });
  const NN = N.length;
  const NP = NN + S.length;
  const P = []; // the steps of every op drawn as a cluster, flat: {node, id, label, family, inputs, shape, from}
  const stepsOf = new Map(); // node -> its step units, in order
  N.forEach((n, i) => {
    if (!n.parts) return;
    const ids = new Map();
    stepsOf.set(i, n.parts.map((p) => {
      const u = NP + P.length;
      P.push({ node: i, id: p.id, label: p.label, family: p.family, inputs: p.inputs, shape: p.shape,
               from: p.inputs.filter((x) => typeof x === "string").map((x) => ids.get(x)) });
      ids.set(p.id, u);
      return u;
    }));
  });
  const NU = NP + P.length;
  const ROOT = -1;
  const BOX_H = 38, GAP_X = 16, GAP_Y = 22, PAD = 10, HEAD = 24, CHAR = 7, MARGIN = 400;

  // ------------------------------------------------------------ structure
  const depth = new Int32Array(S.length);
  S.forEach((s, j) => { let d = 0, p = s.parent; while (p >= 0) { d++; p = S[p].parent; } depth[j] = d; });
  const first = new Int32Array(S.length).fill(-1);
  const members = S.map(() => []);
  N.forEach((n, i) => n.chain.forEach((j) => { if (first[j] < 0) first[j] = i; members[j].push(i); }));
  const unitsOf = new Map([[ROOT, []]]);
  S.forEach((s, j) => unitsOf.set(j, []));
  S.forEach((s, j) => unitsOf.get(s.parent).push(NN + j));
  N.forEach((n, i) => unitsOf.get(n.chain.length ? n.chain[n.chain.length - 1] : ROOT).push(i));
  const key = (u) => (u >= NN ? first[u - NN] : u);
  unitsOf.forEach((list) => list.sort((a, b) => key(a) - key(b)));
  const open = new Uint8Array(S.length);
  const unfolded = new Uint8Array(NN); // an op with steps: drawn as its steps (1) or one box (0)
  const isScope = (u) => u >= NN && u < NP;
  const isStep = (u) => u >= NP;
  const hasSteps = (u) => u < NN && stepsOf.has(u);
  const step = (u) => P[u - NP];
  const nameOf = (u) => (isScope(u) ? S[u - NN].path : isStep(u) ? N[step(u).node].name + "/" + step(u).id : N[u].name);

  function rep(i) { // the unit that shows node i now
    for (const j of N[i].chain) if (!open[j]) return NN + j;
    return i;
  }
  const asSteps = (i) => rep(i) === i && unfolded[i] === 1 && stepsOf.has(i); // node i is shown as its steps now
  function tailUnit(i) { // where an edge out of node i starts: an op shown as steps, at its last step
    if (!asSteps(i)) return rep(i);
    const steps = stepsOf.get(i);
    return steps[steps.length - 1];
  }
  function headUnits(i, k) { // where input k of node i goes: an op shown as steps, to the steps reading it
    return asSteps(i) ? stepsOf.get(i).filter((u) => step(u).inputs.includes(k)) : [rep(i)];
  }

  // ------------------------------------------------------------ text
  const num = (x) => x.toLocaleString("en-US");
  function count(x) {
    if (x < 1e3) return String(x);
    if (x < 1e6) return (x / 1e3).toFixed(1) + "k";
    if (x < 1e9) return (x / 1e6).toFixed(2) + "M";
    return (x / 1e9).toFixed(2) + "G";
  }
  function lines(u) { // [main, secondary] text of a box
    if (isStep(u)) return [step(u).label, step(u).shape];
    if (!isScope(u)) return [N[u].label, N[u].shape];
    const s = S[u - NN];
    return [s.title + "  " + s.aside, count(s.params) + " params · " + s.in + " → " + s.out];
  }
  function frameTitle(j) {
    return "▾ " + S[j].title + "  " + S[j].aside + " · " + count(S[j].params) + " params";
  }
  function opTitle(i) {
    return "▾ " + N[i].label + "  " + N[i].name + " · " + count(N[i].params) + " params";
  }
  const titleOf = (u) => (isScope(u) ? frameTitle(u - NN) : opTitle(u));
  function args(attrs) {
    return Object.keys(attrs).map((k) => k + ": " + JSON.stringify(attrs[k])).join(", ");
  }
  function tipLines(u) {
    if (isStep(u)) {
      const p = step(u);
      return [nameOf(u), "step of " + N[p.node].op + ": " + p.label, "output shape: " + p.shape];
    }
    if (!isScope(u)) {
      const n = N[u];
      const out = [n.name, "op: " + n.op + (n.label !== n.op ? "  (" + n.label + ")" : "")];
      if (Object.keys(n.attrs).length) out.push("parameters: " + args(n.attrs));
      out.push("output shape: " + n.shape, "params: " + num(n.params), "MACs: " + num(n.macs));
      if (hasSteps(u)) out.push(stepsOf.get(u).length + " steps" + (unfolded[u] ? " · click the title to collapse" : " · click to expand"));
      return out;
    }
    const s = S[u - NN];
    const out = [s.path, "block: " + s.kind];
    if (Object.keys(s.args).length) out.push("parameters: " + args(s.args));
    out.push("shape: " + s.in + " → " + s.out, "params: " + num(s.params), "MACs: " + num(s.macs),
             s.size + " op" + (s.size === 1 ? "" : "s") + (open[u - NN] ? " · click the title to collapse" : " · click to expand"));
    return out;
  }

  // ------------------------------------------------------------ layout
  let boxes = []; // {u, x, y, w, h, kind}
  let where = new Map(); // unit -> box
  let edges = []; // [tailBox, headBox, shape on the edge]
  let shares = []; // [sharing box, owner box] of `share:`

  function boxWidth(u) {
    const [a, b] = lines(u);
    return Math.max(96, Math.min(420, CHAR * Math.max(a.length, b.length) + 22));
  }

  function layout(scope) { // {w, h, kids: [{u, x, y, w, h, sub}]} of an open scope (or the root)
    const units = unitsOf.get(scope);
    const level = scope === ROOT ? 0 : depth[scope] + 1;
    const inside = (i) => scope === ROOT || N[i].chain[level - 1] === scope;
    const unitAt = (i) => (N[i].chain.length > level ? NN + N[i].chain[level] : i);
    const rank = new Map();
    const preds = new Map(); // unit -> the units inside this scope that feed it
    for (const u of units) {
      let r = 0;
      const from = new Set();
      for (const m of isScope(u) ? members[u - NN] : [u]) {
        for (const p of N[m].inputs) {
          if (!inside(p)) continue;
          const pu = unitAt(p);
          if (pu !== u && rank.has(pu)) { r = Math.max(r, rank.get(pu) + 1); from.add(pu); }
        }
      }
      rank.set(u, r);
      preds.set(u, from);
    }
    return arrange(units, rank, preds, scope === ROOT ? null : frameTitle(scope));
  }

  function layoutSteps(i) { // an op shown as its steps: ranked by the steps they read
    const units = stepsOf.get(i);
    const rank = new Map(), preds = new Map();
    for (const u of units) {
      const from = new Set(step(u).from);
      rank.set(u, Math.max(0, ...[...from].map((p) => rank.get(p) + 1)));
      preds.set(u, from);
    }
    return arrange(units, rank, preds, opTitle(i));
  }

  function sublayout(u) { // the frame of an open unit, or null for a box
    if (isScope(u)) return open[u - NN] ? layout(u - NN) : null;
    return hasSteps(u) && unfolded[u] ? layoutSteps(u) : null;
  }

  function arrange(units, rank, preds, title) { // rows of boxes under a frame title (null: the page)
    const rows = [];
    for (const u of units) (rows[rank.get(u)] = rows[rank.get(u)] || []).push(u);
    // Rank by rank, each unit goes under the mean of the units feeding it (so a branch stays in
    // its column), pushed right as far as needed to keep the boxes apart; x is a centre here.
    const centre = new Map();
    const kids = [];
    let y = title === null ? PAD : HEAD + PAD, left = Infinity, right = -Infinity;
    for (const row of rows) {
      if (!row) continue;
      const items = row.map((u) => {
        const sub = sublayout(u);
        const xs = [...preds.get(u)].map((p) => centre.get(p));
        return { u, sub, w: sub ? sub.w : boxWidth(u), h: sub ? sub.h : BOX_H, want: xs.length ? xs.reduce((a, b) => a + b) / xs.length : null };
      });
      if (items.every((it) => it.want === null)) { // a first rank: centred on 0
        let x = -(items.reduce((a, it) => a + it.w, 0) + GAP_X * (items.length - 1)) / 2;
        for (const it of items) { it.want = x + it.w / 2; x += it.w + GAP_X; }
      }
      let edge = -Infinity;
      for (const it of items) {
        const x = Math.max(it.want === null ? edge + it.w / 2 : it.want, edge + it.w / 2);
        centre.set(it.u, x);
        edge = x + it.w / 2 + GAP_X;
        kids.push({ u: it.u, x: x - it.w / 2, y, w: it.w, h: it.h, sub: it.sub });
        left = Math.min(left, x - it.w / 2);
        right = Math.max(right, x + it.w / 2);
      }
      y += Math.max(...items.map((it) => it.h)) + GAP_Y;
    }
    let width = right - left;
    const head = title === null ? 0 : CHAR * title.length + 10;
    const shift = PAD - left + Math.max(0, (head - width) / 2);
    width = Math.max(width, head);
    for (const k of kids) k.x += shift;
    return { w: width + 2 * PAD, h: y - GAP_Y + PAD, kids };
  }

  function place(lay, x0, y0) {
    for (const k of lay.kids) {
      const kind = k.sub ? "frame" : isScope(k.u) ? "block" : isStep(k.u) ? "step" : hasSteps(k.u) ? "op steps" : "op";
      const box = { u: k.u, x: x0 + k.x, y: y0 + k.y, w: k.w, h: k.h, kind };
      boxes.push(box);
      where.set(k.u, box);
      if (k.sub) place(k.sub, box.x, box.y);
    }
  }

  function relayout() {
    const root = layout(ROOT);
    boxes = []; where = new Map();
    place(root, 0, 0);
    const seen = new Set();
    edges = [];
    const link = (a, b, shape) => {
      const k = a * NU + b;
      if (a === b || seen.has(k)) return;
      seen.add(k);
      edges.push([where.get(a), where.get(b), shape]);
    };
    N.forEach((n, i) => {
      n.inputs.forEach((p, k) => { const a = tailUnit(p); for (const b of headUnits(i, k)) link(a, b, N[p].shape); });
      if (asSteps(i)) for (const u of stepsOf.get(i)) for (const f of step(u).from) link(f, u, step(f).shape);
    });
    seen.clear();
    shares = [];
    for (const [s, o] of D.shares) { // between the boxes that show them now; none inside one box
      const a = rep(s), b = rep(o), k = a * NU + b;
      if (a === b || seen.has(k)) continue;
      seen.add(k);
      shares.push([where.get(a), where.get(b)]);
    }
    canvas.style.width = root.w + "px";
    canvas.style.height = root.h + "px";
    svg.setAttribute("width", root.w);
    svg.setAttribute("height", root.h);
    drawn.forEach((el) => el.remove());
    drawn.clear();
    render();
  }

  // ------------------------------------------------------------ drawing (only what is near the screen)
  const view = document.getElementById("view");
  const canvas = document.getElementById("canvas");
  const svg = document.getElementById("edges");
  const SVGNS = svg.namespaceURI;
  const tip = document.getElementById("tip");
  const drawn = new Map(); // unit -> element
  let found = null;

  function near(x, y, w, h) {
    const l = view.scrollLeft - MARGIN, t = view.scrollTop - MARGIN;
    return x + w >= l && x <= l + view.clientWidth + 2 * MARGIN && y + h >= t && y <= t + view.clientHeight + 2 * MARGIN;
  }

  function element(box) {
    const el = document.createElement("div");
    const u = box.u;
    el.className = "box " + box.kind + (u === found ? " found" : "");
    el.dataset.unit = u;
    el.dataset.name = nameOf(u);
    el.style.cssText = "left:" + box.x + "px;top:" + box.y + "px;width:" + box.w + "px;height:" + box.h + "px";
    const [a, b] = lines(u);
    if (box.kind === "frame") {
      el.style.zIndex = String((isScope(u) ? depth[u - NN] : N[u].chain.length) + 1); // inner frames above outer ones
      const head = document.createElement("div");
      head.className = "head";
      head.textContent = titleOf(u);
      el.appendChild(head);
    } else {
      const family = isStep(u) ? step(u).family : isScope(u) ? "block" : N[u].family;
      el.style.background = D.colours[family] || D.colours.other;
      const t = document.createElement("span");
      t.className = "t";
      t.textContent = (isScope(u) || hasSteps(u) ? "▸ " : "") + a;
      const s = document.createElement("span");
      s.className = "s";
      s.textContent = b;
      el.append(t, s);
    }
    return el;
  }

  function route(a, b, x1, y1, x2, y2) {
    // Next ranks: one S-curve. An edge that skips ranks runs straight down from its tail and
    // turns to its head at the end, so it passes beside the boxes between; in one column (a
    // shortcut) it swings out to the right of that column first.
    // Returns the path and where its shape label goes: the curve's midpoint (on a long edge,
    // the middle of its straight run beside the boxes it passes).
    if (y2 - y1 <= BOX_H + 2 * GAP_Y) {
      const bend = Math.max(8, (y2 - y1) / 2);
      return ["M" + x1 + "," + y1 + " C" + x1 + "," + (y1 + bend) + " " + x2 + "," + (y2 - bend) + " " + x2 + "," + y2,
              (x1 + x2) / 2 + 3, (y1 + y2) / 2 + 3];
    }
    const xs = Math.abs(x2 - x1) < 40 ? Math.max(x1, x2) + Math.max(a.w, b.w) / 2 + 24 : x1;
    const t = y1 + GAP_Y, h = y2 - GAP_Y;
    return ["M" + x1 + "," + y1 + " C" + x1 + "," + (t - 4) + " " + xs + "," + (y1 + 4) + " " + xs + "," + t +
      " L" + xs + "," + h + " C" + xs + "," + (y2 - 4) + " " + x2 + "," + (h + 4) + " " + x2 + "," + y2, xs + 3, (t + h) / 2 + 3];
  }

  function svgText(x, y, value, cls, a, b) {
    const text = document.createElementNS(SVGNS, "text");
    text.setAttribute("x", x);
    text.setAttribute("y", y);
    if (cls) text.setAttribute("class", cls);
    text.dataset.tail = nameOf(a.u);
    text.dataset.head = nameOf(b.u);
    text.textContent = value;
    svg.appendChild(text);
  }

  function svgPath(d, cls, a, b) {
    const path = document.createElementNS(SVGNS, "path");
    path.setAttribute("d", d);
    if (cls) path.setAttribute("class", cls);
    path.dataset.tail = nameOf(a.u);
    path.dataset.head = nameOf(b.u);
    svg.appendChild(path);
  }

  function render() {
    const keep = new Set();
    for (const box of boxes) {
      if (!near(box.x, box.y, box.w, box.h)) continue;
      keep.add(box.u);
      if (!drawn.has(box.u)) { const el = element(box); drawn.set(box.u, el); canvas.appendChild(el); }
    }
    drawn.forEach((el, u) => { if (!keep.has(u)) { el.remove(); drawn.delete(u); } });
    svg.textContent = "";
    for (const [a, b, shape] of edges) {
      const x1 = a.x + a.w / 2, y1 = a.y + a.h, x2 = b.x + b.w / 2, y2 = b.y;
      if (!near(Math.min(x1, x2), Math.min(y1, y2), Math.abs(x2 - x1), Math.abs(y2 - y1))) continue;
      const [d, lx, ly] = route(a, b, x1, y1, x2, y2);
      svgPath(d, null, a, b);
      if (shape) svgText(lx, ly, shape, null, a, b);
    }
    for (const [a, b] of shares) { // right of both boxes, bulging out: beside the data flow
      const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x + b.w, y2 = b.y + b.h / 2;
      const cx = Math.max(x1, x2) + 30 + Math.min(60, Math.abs(y2 - y1) / 8);
      if (!near(Math.min(x1, x2), Math.min(y1, y2), cx - Math.min(x1, x2), Math.abs(y2 - y1))) continue;
      svgPath("M" + x1 + "," + y1 + " C" + cx + "," + y1 + " " + cx + "," + y2 + " " + x2 + "," + y2, "share", a, b);
      svgText(0.75 * cx + 0.125 * (x1 + x2) + 3, (y1 + y2) / 2 + 3, "shares", "share", a, b);
    }
  }

  let pending = false;
  view.addEventListener("scroll", () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => { pending = false; render(); });
  });
  window.addEventListener("resize", render);

  // ------------------------------------------------------------ interaction
  function unitOf(target) {
    const el = target.closest && target.closest("[data-unit]");
    return el ? Number(el.dataset.unit) : null;
  }
  canvas.addEventListener("click", (ev) => {
    const u = unitOf(ev.target);
    if (u === null || !(isScope(u) || hasSteps(u))) return;
    const frame = isScope(u) ? open[u - NN] : unfolded[u];
    if (frame && !ev.target.closest(".head")) return; // a click inside an open block's frame
    if (isScope(u)) open[u - NN] = frame ? 0 : 1;
    else unfolded[u] = frame ? 0 : 1;
    tip.hidden = true;
    relayout();
  });
  canvas.addEventListener("mouseover", (ev) => {
    const u = unitOf(ev.target);
    if (u === null) return;
    const el = drawn.get(u);
    if (el && el.classList.contains("frame") && !ev.target.closest(".head")) { tip.hidden = true; return; }
    tip.textContent = "";
    tipLines(u).forEach((line, k) => {
      const div = document.createElement("div");
      if (k === 0) div.className = "name";
      div.textContent = line;
      tip.appendChild(div);
    });
    tip.hidden = false;
  });
  canvas.addEventListener("mousemove", (ev) => {
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - tip.offsetWidth - 4) + "px";
    tip.style.top = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 4) + "px";
  });
  canvas.addEventListener("mouseleave", () => { tip.hidden = true; });

  function reveal(u) {
    const chain = isScope(u) ? ancestors(u - NN) : N[u].chain;
    chain.forEach((j) => { open[j] = 1; });
    found = u;
    relayout();
    const box = where.get(u);
    view.scrollTo(Math.max(0, box.x + box.w / 2 - view.clientWidth / 2), Math.max(0, box.y + box.h / 2 - view.clientHeight / 2));
    render();
  }
  function ancestors(j) {
    const out = [];
    for (let p = S[j].parent; p >= 0; p = S[p].parent) out.push(p);
    return out;
  }

  const search = document.getElementById("search");
  const matches = document.getElementById("matches");
  function find(q) {
    q = q.trim().toLowerCase();
    if (!q) return [];
    const exact = [], some = [];
    const test = (name, u) => {
      const n = name.toLowerCase();
      if (n === q) exact.push(u);
      else if (some.length < 50 && n.includes(q)) some.push(u);
    };
    N.forEach((n, i) => test(n.name, i));
    S.forEach((s, j) => test(s.path, NN + j));
    return exact.concat(some).slice(0, 50);
  }
  search.addEventListener("input", () => {
    const hits = find(search.value);
    matches.textContent = "";
    for (const u of hits) {
      const li = document.createElement("li");
      li.dataset.unit = u;
      li.textContent = (isScope(u) ? S[u - NN].path + " — " + S[u - NN].kind : N[u].name + " — " + N[u].label);
      matches.appendChild(li);
    }
    matches.hidden = hits.length === 0;
  });
  search.addEventListener("keydown", (ev) => {
    if (ev.key !== "Enter") return;
    const hit = find(search.value);
    if (hit.length) { matches.hidden = true; reveal(hit[0]); }
  });
  matches.addEventListener("click", (ev) => {
    const li = ev.target.closest("li");
    if (li) { matches.hidden = true; reveal(Number(li.dataset.unit)); }
  });
  document.getElementById("expand-all").addEventListener("click", () => { open.fill(1); unfolded.fill(1); relayout(); });
  document.getElementById("collapse-all").addEventListener("click", () => { open.fill(0); unfolded.fill(0); relayout(); });

  // ------------------------------------------------------------ opening
  document.getElementById("title").textContent = D.title;
  document.getElementById("facts").textContent =
    (N.length - 2) + " layers · " + num(D.params) + " params · " + count(D.macs) + " MACs · " + D.input + " → " + D.output_shape;
  // Blocks, and ops with steps, open breadth first while the page stays small; with --depth N,
  // the blocks nested less than N deep open, and every op with steps shows them (as in the SVG).
  let shown = unitsOf.get(ROOT).length;
  const fixed = D.open_depth !== null && D.open_depth !== undefined;
  const order = S.map((s, j) => NN + j).concat([...stepsOf.keys()]);
  const level = (u) => (isScope(u) ? depth[u - NN] : N[u].chain.length);
  order.sort((a, b) => level(a) - level(b) || key(a) - key(b));
  for (const u of order) {
    if (!isScope(u)) {
      const chain = N[u].chain, more = stepsOf.get(u).length - 1;
      if (fixed) unfolded[u] = 1;
      else if ((!chain.length || open[chain[chain.length - 1]]) && shown + more <= D.open_boxes) { unfolded[u] = 1; shown += more; }
      continue;
    }
    const j = u - NN, p = S[j].parent;
    if (fixed) { open[j] = depth[j] < D.open_depth ? 1 : 0; continue; }
    if (p >= 0 && !open[p]) continue;
    const more = unitsOf.get(j).length - 1;
    if (shown + more <= D.open_boxes) { open[j] = 1; shown += more; }
  }
  relayout();
  document.body.dataset.ready = "1";
})();
