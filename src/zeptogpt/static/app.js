// ZeptoGPT page. Every number shown comes from the server's JSON API (the PyTorch model);
// this file only lays the numbers out, colours them and puts them into words: it computes
// nothing of the model.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const TYPE_PAUSE_MS = 250;  // the page decodes what was typed once typing pauses this long
let INFO = null;
let STEP = 0;  // the decoding step on show, from 0

// --- small DOM and colour helpers -------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

// 0..1 -> white..blue (attention, probabilities)
function seqColor(v) {
  const t = Math.max(0, Math.min(1, v));
  const r = Math.round(255 - t * (255 - 8)), g = Math.round(255 - t * (255 - 69)),
        b = Math.round(255 - t * (255 - 148));
  return `rgb(${r},${g},${b})`;
}

// signed value scaled by vmax -> blue..white..red (weights, activations)
function divColor(v, vmax) {
  const t = Math.max(-1, Math.min(1, v / (vmax || 1)));
  const a = Math.abs(t);
  return t >= 0
    ? `rgb(${Math.round(255 - a * 75)},${Math.round(255 - a * 230)},${Math.round(255 - a * 215)})`
    : `rgb(${Math.round(255 - a * 230)},${Math.round(255 - a * 155)},${Math.round(255 - a * 75)})`;
}

function textColor(bg) {
  const [r, g, b] = bg.match(/\d+/g).map(Number);
  return 0.299 * r + 0.587 * g + 0.114 * b < 128 ? "#fff" : "#000";
}

function maxAbs(matrix) {
  return Math.max(1e-9, ...matrix.flat().map(Math.abs));
}

// +3.2 or −0.4 (a minus sign, not a hyphen); toFixed rounds halves up, as anatomy._fixed does
const signed = (v, digits = 1) => (v < 0 ? "−" : "+") + Math.abs(v).toFixed(digits);

// The value -> colour scale of a heatmap: a ramp from its lowest to its highest value.
function legend(kind, vmax, what = "") {
  const lo = kind === "signed" ? -vmax : 0, hi = kind === "signed" ? vmax : 1;
  const stops = [];
  for (let i = 0; i <= 10; i++) {
    const v = lo + (hi - lo) * i / 10;
    stops.push(kind === "signed" ? divColor(v, vmax) : seqColor(v));
  }
  const ramp = el("span", { class: "ramp" });
  ramp.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  const end = (v) => (kind === "signed" ? signed(v, 2) : String(v));
  const mid = kind === "signed" ? " through 0 (white)" : "";
  return el("div", { class: "legend", "data-min": String(lo), "data-max": String(hi),
                     role: "img", "aria-label": `colour scale from ${end(lo)}${mid} to ${end(hi)}` },
    what ? el("span", { class: "what", text: what }) : "",
    el("span", { class: "lo", text: end(lo) }), ramp, el("span", { class: "hi", text: end(hi) }));
}

// A labelled heatmap in a figure with its colour legend. opts: {rows, cols, kind:
// "prob"|"signed", vmax (signed; default the matrix's largest |value|), digits, newest, title,
// compact, tip(i, j, v) -> tooltip text, cls, part (diagram nodes, space-separated),
// rowPart(i) -> diagram nodes of row i, legend (false: the caller shows a shared one)}
function heatmap(matrix, opts) {
  const vmax = opts.kind === "signed" ? (opts.vmax ?? maxAbs(matrix)) : 1;
  const table = el("table", { class: "heatmap" + (opts.compact ? " compact" : "") +
                              (opts.cls ? " " + opts.cls : "") });
  if (opts.cols) {
    const head = el("tr", {}, el("th"));
    for (const c of opts.cols) head.append(el("th", { text: c }));
    table.append(el("thead", {}, head));
  }
  const body = el("tbody");
  matrix.forEach((row, i) => {
    const tr = el("tr", opts.newest === i ? { class: "newest" } : {});
    if (opts.rowPart) tr.dataset.part = opts.rowPart(i);
    tr.append(el("th", { text: opts.rows ? opts.rows[i] : "" }));
    row.forEach((v, j) => {
      if (v === null) { tr.append(el("td")); return; }
      const bg = opts.kind === "signed" ? divColor(v, vmax) : seqColor(v);
      const td = el("td", { text: opts.compact ? "" : v.toFixed(opts.digits ?? 2) });
      td.style.background = bg;
      td.style.color = textColor(bg);
      if (opts.tip) {
        const tip = opts.tip(i, j, v);
        td.title = tip;
        td.dataset.tip = tip;
      }
      tr.append(td);
    });
    body.append(tr);
  });
  table.append(body);
  const figure = el("div", { class: "figure" });
  if (opts.title) figure.append(el("h3", { text: opts.title }));
  figure.append(el("div", { class: "scroll" }, table));
  if (opts.legend !== false) figure.append(legend(opts.kind, vmax));
  if (opts.part) {
    figure.dataset.part = opts.part;
    figure.tabIndex = 0;  // focusable, so the keyboard lights up the diagram too
  }
  return figure;
}

async function getJSON(url, init) {
  const response = await fetch(url, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// --- the diagram: the blocks, the data flowing through them, and where each table sits --------

const NORMS = { "layernorm": "LayerNorm", "layernorm-fixed": "LayerNorm, no gain",
                "rmsnorm": "RMSNorm", "rmsnorm-fixed": "RMSNorm, no gain" };

const headNodes = (layer, arch) =>
  Array.from({ length: arch.n_head }, (_, h) => `L${layer}H${h}`);

// The network drawn top to bottom from the architecture alone: embeddings, then per block the
// attention and MLP branches (norm first, if any) whose outputs are added (⊕) to the residual
// stream, which skips past them on the left; then ln_f, the unembedding and the logits.
// Every box is a node named as the tables' data-part attributes name it.
function drawDiagram(arch) {
  const W = 300, cx = 166, bw = 196, skipX = 34;
  const left = cx - bw / 2;
  const root = svg("svg", { id: "diagram-svg", role: "img", "aria-label": "the network" });
  root.append(svg("defs", {}));
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5",
                                 markerWidth: "7", markerHeight: "7", orient: "auto" });
  marker.append(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#5a6478" }));
  root.firstChild.append(marker);
  const flows = svg("g", { class: "flows" });
  const nodes = svg("g", { class: "nodes" });
  root.append(flows, nodes);
  const flow = (points) => flows.append(svg("polyline", {
    points: points.map((p) => p.join(",")).join(" "), class: "flow", "marker-end": "url(#arrow)",
  }));
  // a box; with ``top`` its label goes at the top, above what is drawn inside it
  const node = (name, x, y, w, h, label, sub = "", top = false) => {
    const g = svg("g", { class: "node", "data-node": name, "data-part": name });
    g.append(svg("rect", { x, y, width: w, height: h, rx: 5 }));
    g.append(svg("text", { x: x + w / 2, y: y + (top ? 15 : sub ? h / 2 - 2 : h / 2 + 4),
                           "text-anchor": "middle", class: "label" }, label));
    if (sub && !top) {
      g.append(svg("text", { x: x + w / 2, y: y + h / 2 + 11, "text-anchor": "middle",
                             class: "sub" }, sub));
    }
    nodes.append(g);
    return g;
  };
  const plus = (name, y) => {  // ⊕ centred at (cx, y)
    const g = svg("g", { class: "node add", "data-node": name, "data-part": name });
    g.append(svg("circle", { cx, cy: y, r: 9 }));
    g.append(svg("text", { x: cx, y: y + 4.5, "text-anchor": "middle", class: "label" }, "+"));
    nodes.append(g);
  };

  let y = 8;
  node("tokens", left, y, bw, 26, "tokens");
  y += 26;
  if (arch.positions !== "none") {
    const w = bw / 2 - 4, ey = y + 16;
    flow([[cx - w / 2 - 4, y], [cx - w / 2 - 4, ey]]);
    flow([[cx + w / 2 + 4, y], [cx + w / 2 + 4, ey]]);
    node("embed", left, ey, w, 36, "token", "W_E");
    node("pos", cx + 4, ey, w, 36, "position",
         arch.positions === "learned" ? "W_pos" : "sinusoidal");
    y = ey + 36 + 20;
    flow([[cx - w / 2 - 4, ey + 36], [cx - 9, y - 4]]);
    flow([[cx + w / 2 + 4, ey + 36], [cx + 9, y - 4]]);
    plus("embed-add", y + 5);
    y += 14;
  } else {
    flow([[cx, y], [cx, y + 16]]);
    node("embed", left, y + 16, bw, 36, "token embedding", "W_E (no positions)");
    y += 60;
  }

  const norm = NORMS[arch.norm];
  // one branch off the stream: its boxes, then ⊕ back into the stream; the stream skips past
  const branch = (boxes, add) => {
    const top = y;
    y += 14;
    for (const [name, h, label, sub, inner] of boxes) {
      flow([[cx, y - 14], [cx, y]]);
      const g = node(name, left, y, bw, h, label, sub, Boolean(inner));
      if (inner) inner(g, y);
      y += h + 14;
    }
    flow([[cx, y - 14], [cx, y + 1]]);
    plus(add, y + 10);
    flow([[cx, top + 4], [skipX, top + 4], [skipX, y + 10], [cx - 10, y + 10]]);
    y += 19;
  };
  for (let i = 0; i < arch.n_layer; i++) {
    const frameTop = y + 2;
    if (arch.n_layer > 1) y += 14;
    const ties = [arch.tie_qk ? "W_K = W_Q" : "", arch.tie_vo ? "W_O = W_Vᵀ" : ""]
      .filter(Boolean).join(", ");
    const heads = (g, top) => {
      g.classList.add("attention");
      const gap = 6, hw = (bw - 12 - gap * (arch.n_head - 1)) / arch.n_head;
      for (let h = 0; h < arch.n_head; h++) {
        const x = left + 6 + h * (hw + gap);
        const hg = svg("g", { class: "node head", "data-node": `L${i}H${h}`,
                              "data-part": `L${i}H${h}` });
        hg.append(svg("rect", { x, y: top + 24, width: hw, height: 26, rx: 4 }));
        hg.append(svg("text", { x: x + hw / 2, y: top + 41, "text-anchor": "middle",
                                class: "label" }, hw >= 52 ? `head ${h}` : `h${h}`));
        nodes.append(hg);
      }
      if (ties) {
        g.append(svg("text", { x: cx, y: top + 64, "text-anchor": "middle", class: "tie" }, ties));
      }
    };
    const attn = [[`L${i}attn`, ties ? 72 : 58, "attention (causal)", "", heads]];
    if (norm) attn.unshift([`L${i}ln1`, 24, `ln1 · ${norm}`, ""]);
    branch(attn, `L${i}attn-add`);
    if (arch.d_mlp) {
      const mlp = [[`L${i}MLP`, 36, "MLP", `W_in · ReLU · W_out, M=${arch.d_mlp}`]];
      if (norm) mlp.unshift([`L${i}ln2`, 24, `ln2 · ${norm}`, ""]);
      branch(mlp, `L${i}mlp-add`);
    }
    if (arch.n_layer > 1) {
      nodes.prepend(svg("rect", { x: 14, y: frameTop, width: W - 20, height: y - frameTop - 4,
                                  rx: 8, class: "block" }));
      nodes.append(svg("text", { x: 20, y: frameTop + 12, class: "sub" }, `block ${i}`));
      y += 4;
    }
  }
  const tail = [["unembed", 36, "unembedding",
                 arch.tie_unembed ? "W_E transposed (tied)" : "W_U"],
                ["logits", 36, "logits → softmax → p", "greedy pick: the next letter"]];
  if (norm) tail.unshift(["lnf", 24, `ln_f · ${norm}`, ""]);
  for (const [name, h, label, sub] of tail) {
    flow([[cx, y - 5], [cx, y + 9]]);
    node(name, left, y + 9, bw, h, label, sub);
    y += h + 14;
  }
  root.setAttribute("viewBox", `0 0 ${W} ${y}`);
  root.setAttribute("width", String(W));
  root.setAttribute("height", String(y));
  return root;
}

// The diagram's nodes a table of the page shows, by name.
function lensNode(point) {
  if (point === "embed") return INFO.arch.positions !== "none" ? "embed-add" : "embed";
  const [, i, where] = point.match(/^blocks\.(\d+)\.(resid_mid|resid_post)$/);
  return where === "resid_mid" || !INFO.arch.d_mlp ? `L${i}attn-add` : `L${i}mlp-add`;
}

function partNode(part) {  // a part of direct logit attribution -> its box
  return part === "bias" ? "lnf" : part;
}

function weightNodes(name) {
  const arch = INFO.arch;
  if (name === "W_E") return arch.tie_unembed ? "embed unembed" : "embed";
  if (name === "W_pos") return "pos";
  if (name === "W_U") return "unembed";
  if (name.startsWith("ln_f")) return "lnf";
  const m = name.match(/^blocks\.(\d+)\.(ln1|ln2|attn|mlp)\./);
  if (!m) return "";
  if (m[2] === "attn") return headNodes(m[1], arch).join(" ");
  return m[2] === "mlp" ? `L${m[1]}MLP` : `L${m[1]}${m[2]}`;
}

function lightUp(target) {
  const holder = target && target.closest ? target.closest("[data-part]") : null;
  const names = holder ? holder.dataset.part.split(" ").filter(Boolean) : [];
  for (const n of document.querySelectorAll("#diagram .lit")) n.classList.remove("lit");
  for (const name of names) {
    for (const n of document.querySelectorAll(`#diagram [data-node="${name}"]`)) {
      n.classList.add("lit");
    }
  }
}

// --- one step in words --------------------------------------------------------------------------

const NUMBER_WORDS = { 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven",
                       8: "eight", 9: "nine" };

function partLabel(a, part) {
  const [, layer, head] = part.match(/^L(\d+)(?:H(\d+)|MLP)$/);
  if (head !== undefined) return a.n_layer === 1 ? `head ${head}` : `layer ${layer} head ${head}`;
  return a.n_layer === 1 ? "the MLP" : `layer ${layer}'s MLP`;
}

// Step k (from 0) in one sentence, from its numbers only: the head that adds most to the chosen
// letter's logit, the token that takes most of that head's weight, and what every other part
// adds (one that adds less than 0.05 either way is left out). anatomy.step_sentence in Python
// writes the same sentence; the browser test holds the two to each other.
function stepSentence(a, k) {
  const s = a.steps[k], c = s.chosen, shares = s.attribution;
  const heads = a.parts.filter((p) => /^L\d+H\d+$/.test(p));
  let top = heads[0];
  for (const p of heads) if (shares[p] > shares[top]) top = p;  // the first of equals
  const [, layer, head] = top.match(/^L(\d+)H(\d+)$/).map(Number);
  const groups = new Map();  // token -> its positions so far, in order of first appearance
  for (let i = 0; i <= s.position; i++) {
    if (!groups.has(a.tokens[i])) groups.set(a.tokens[i], []);
    groups.get(a.tokens[i]).push(i);
  }
  const row = s.attention[layer][head];
  let most = null, weight = -Infinity;
  for (const [t, where] of groups) {
    const w = where.reduce((sum, i) => sum + row[i], 0);
    if (w > weight) { most = t; weight = w; }
  }
  const where = groups.get(most);
  const on = where.length === 1 ? `the ${most} (position ${where[0]})`
    : `the ${NUMBER_WORDS[where.length] ?? where.length} ${most}'s ` +
      `(positions ${where.join(", ")})`;
  const logit = s.logits[a.vocab.indexOf(c)];
  let sentence = `Step ${k + 1} picks ${c}: ${partLabel(a, top)} puts ${weight.toFixed(2)} of ` +
    `its weight on ${on} and adds ${signed(shares[top])} to ${c}'s logit of ` +
    `${logit < 0 ? "−" : ""}${Math.abs(logit).toFixed(1)}`;
  const rest = a.parts.filter((p) => p !== top && !["embed", "pos", "bias"].includes(p))
    .map((p) => [partLabel(a, p), shares[p]]);
  rest.push(["pos" in shares ? "the embeddings" : "the token embedding",
             shares.embed + (shares.pos ?? 0)]);
  rest.push(["ln_f's bias", shares.bias]);
  for (const [label, v] of rest) {
    if (Math.abs(v).toFixed(1) !== "0.0") {
      sentence += `; ${label} ${label === "the embeddings" ? "add" : "adds"} ${signed(v)}`;
    }
  }
  return sentence + ".";
}

// --- the trace ----------------------------------------------------------------------------------

const posLabels = (tokens) => tokens.map((t, i) => `${i} ${t}`);

function renderTrace(a) {
  const seen = a.token_embed.length;  // tokens the last forward pass saw
  const L = a.steps.length;
  $("tokens").replaceChildren(...a.tokens.map((t, i) => {
    const role = i < L ? `x${i + 1}` : i === L ? "sep" : `y${i - L}`;
    const cls = "token" + (i > L ? " answer" : "") + (i >= seen ? " unseen" : "");
    return el("span", { class: cls, "data-position": String(i) }, t,
              el("small", { text: `${i} · ${role}` }));
  }));

  // the three tables share one scale, so the sum's colours read against its parts'
  const dims = a.embed[0].map((_, j) => `e${j}`);
  const labels = posLabels(a.tokens.slice(0, seen));
  const vmax = maxAbs([...a.token_embed, ...(a.pos_embed || []), ...a.embed]);
  const figures = [heatmap(a.token_embed, { rows: labels, cols: dims, kind: "signed", vmax,
                                            title: "token embedding W_E[token]",
                                            part: "embed" })];
  if (a.pos_embed) {
    figures.push(heatmap(a.pos_embed, { rows: labels, cols: dims, kind: "signed", vmax,
                                        title: "+ position embedding W_pos[i]", part: "pos" }));
  }
  figures.push(heatmap(a.embed, { rows: labels, cols: dims, kind: "signed", vmax,
                                  title: "= residual stream start", part: lensNode("embed") }));
  $("embeddings").replaceChildren(...figures);

  $("steps").replaceChildren(...a.steps.map((s, k) => renderStep(a, s, k)));
  const slider = $("step-slider");
  slider.max = String(L);
  showStep(Math.min(STEP, L - 1));
}

// One decoding step shown, the others hidden; the slider, its label and the tokens follow.
function showStep(k) {
  STEP = k;
  const steps = [...document.querySelectorAll("#steps .step")];
  steps.forEach((node, i) => { node.hidden = i !== k; });
  $("step-slider").value = String(k + 1);
  $("step-shown").textContent = `${k + 1} of ${steps.length}`;
  const position = steps[k] ? Number(steps[k].dataset.position) : -1;
  for (const t of document.querySelectorAll("#tokens .token")) {
    const i = Number(t.dataset.position);
    t.classList.toggle("current", i === position);
    t.classList.toggle("next", i === position + 1);
  }
}

// What each part adds to the chosen letter's logit (direct logit attribution), as signed bars.
function attributionFigure(a, s) {
  const c = s.chosen;
  const names = { embed: "token embedding", pos: "position embedding", bias: "ln_f bias" };
  const vmax = Math.max(1e-9, ...a.parts.map((p) => Math.abs(s.attribution[p])));
  const table = el("table", { class: "attribution" });
  for (const p of a.parts) {
    const v = s.attribution[p];
    const bar = el("span", { class: "sbar " + (v < 0 ? "neg" : "pos") });
    bar.style.width = `${(Math.abs(v) / vmax * 50).toFixed(1)}%`;
    bar.style.left = v < 0 ? `${(50 - Math.abs(v) / vmax * 50).toFixed(1)}%` : "50%";
    table.append(el("tr", { "data-part": partNode(p), "data-name": p },
      el("th", { text: names[p] ?? partLabel(a, p) }), el("td", { text: signed(v, 2) }),
      el("td", { class: "track" }, bar)));
  }
  const logit = s.logits[a.vocab.indexOf(c)];
  table.append(el("tr", { class: "total" }, el("th", { text: `= logit of ${c}` }),
                  el("td", { text: logit.toFixed(2) }), el("td")));
  return el("div", { class: "figure", tabindex: "0",
                     "data-part": [...new Set(a.parts.map(partNode)), "unembed"].join(" ") },
    el("h3", { text: `what each part adds to ${c}'s logit` }),
    el("div", { class: "scroll" }, table),
    el("p", { class: "caption", text: "red adds, blue takes away" }));
}

// One decoding step: a sentence, every layer's attention heads, what each part adds to the
// chosen logit, every layer's MLP activations, the logits and the model's own probabilities
// (a softmax over the whole vocabulary, <sep> included), and the logit lens through the stream.
// With one layer nothing is labelled by layer.
function renderStep(a, s, k) {
  const n = s.position + 1;
  const labels = posLabels(a.tokens.slice(0, n));
  const several = a.n_layer > 1;
  const layers = a.attention.map((layer, i) => {
    const heads = layer.map((pattern, h) => {
      const name = several ? `layer ${i} head ${h}` : `head ${h}`;
      const rows = pattern.slice(0, n).map((row, q) => row.slice(0, n).map((v, key) =>
        key <= q ? v : null));
      const fig = heatmap(rows, {
        rows: labels, cols: labels, kind: "prob", newest: s.position, title: name,
        part: `L${i}H${h}`,
        tip: (q, key, v) => `${name}: query ${labels[q]} → key ${labels[key]}: ${v.toFixed(4)}`,
      });
      fig.classList.add("head");
      fig.dataset.layer = String(i);
      fig.dataset.head = String(h);
      return fig;
    });
    return el("div", { class: "attention row", "data-layer": String(i) }, ...heads);
  });
  const attention = several ? el("div", { class: "layers" }, ...layers) : layers[0];

  // an attention-only model (MLP width 0) has no activations to show
  const mlp = !s.mlp_hidden[0].length ? el("p", { text: "no MLP: attention only" }) : heatmap(s.mlp_hidden, {
    rows: s.mlp_hidden.map((_, i) => (several ? `layer ${i} · ` : "") + labels[s.position]),
    cols: s.mlp_hidden[0].map((_, j) => `m${j}`), kind: "signed", cls: "mlp",
    title: "MLP activations (after ReLU)",
    part: a.attention.map((_, i) => `L${i}MLP`).join(" "), rowPart: (i) => `L${i}MLP`,
    tip: (i, j, v) => `${several ? `blocks.${i}.` : ""}mlp_hidden[${s.position}, ${j}] = ` +
                      v.toFixed(4),
  });

  const logits = el("table", { class: "logits" },
    el("tr", {}, el("th", { text: "token" }), el("th", { text: "logit" }),
       el("th", { text: "p" }), el("th")));
  a.vocab.forEach((t, i) => {
    const bar = el("span", { class: "bar" });
    bar.style.width = `${Math.round(s.probs[i] * 90)}px`;
    logits.append(el("tr", { class: t === s.chosen ? "picked" : "" },
      el("td", { text: t }), el("td", { text: s.logits[i].toFixed(3) }),
      el("td", { text: s.probs[i].toFixed(3) }), el("td", {}, bar)));
  });

  const lensNodes = [...new Set(a.lens_points.map(lensNode)), "lnf", "unembed"];
  const lens = heatmap(a.lens_points.map((p) => s.lens[p]), {
    rows: a.lens_labels, cols: a.vocab, kind: "prob", digits: 3, cls: "lens",
    title: "logit lens p(token)", part: lensNodes.join(" "),
    rowPart: (r) => lensNode(a.lens_points[r]),
    tip: (r, j, v) => `p(${a.vocab[j]}) ${a.lens_labels[r]} = ${v.toFixed(4)}`,
  });

  return el("div", { class: "step", "data-step": String(k + 1),
                     "data-position": String(s.position) },
    el("h3", {}, `Step ${k + 1}: position ${s.position} (${a.tokens[s.position]}) ` +
                 `predicts y${k + 1} = `, el("span", { class: "chosen", text: s.chosen })),
    el("p", { class: "sentence", text: stepSentence(a, k) }),
    el("div", { class: "row" },
      attention, attributionFigure(a, s), mlp,
      el("div", { class: "figure", tabindex: "0", "data-part": "unembed logits" },
         el("h3", { text: "logits and probabilities" }), logits),
      lens));
}

// --- asking the server --------------------------------------------------------------------------

let asked = null;  // the text last sent
let latest = 0;  // the number of the last request: an older answer is not shown
let typing = null;  // the timer that sends what is typed once typing pauses

async function sortInput(text) {
  asked = text;
  const mine = ++latest;
  const error = $("error");
  try {
    const a = await getJSON("/api/trace", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ input: text }),
    });
    if (mine !== latest) return;
    error.hidden = true;
    error.textContent = "";
    $("result-input").textContent = a.input;
    $("output").textContent = a.output;
    $("result").hidden = false;
    $("hint").textContent = `computed by the server in ${a.ms.toFixed(1)} ms`;
    renderTrace(a);
    $("trace-panel").hidden = false;
    for (const b of document.querySelectorAll("#picker .pick")) {
      b.setAttribute("aria-pressed", String(b.dataset.input === a.input));
    }
  } catch (e) {
    if (mine !== latest) return;
    $("result").hidden = true;
    $("output").textContent = "";
    $("trace-panel").hidden = true;  // an old trace under a new input would mislead
    $("hint").textContent = INFO ? INFO.task : "";
    error.textContent = e.message;
    error.hidden = false;
  }
}

function sortNow(text) {
  clearTimeout(typing);
  typing = null;
  return sortInput(text);
}

// A button per input when the task has few (the server lists them), else a random one.
function renderPicker(info) {
  const box = $("picker");
  const choose = (x) => { $("input").value = x; sortNow(x); };
  if (info.inputs) {
    box.replaceChildren(...info.inputs.map((x) => {
      const b = el("button", { type: "button", class: "pick", text: x, "data-input": x,
                               "aria-pressed": "false" });
      b.addEventListener("click", () => choose(x));
      return b;
    }));
    return;
  }
  const symbols = [...info.alphabet];
  const draw = () => {  // a length, then each symbol, uniformly
    const n = info.min_length + Math.floor(Math.random() * (info.length - info.min_length + 1));
    return Array.from({ length: n },
                      () => symbols[Math.floor(Math.random() * symbols.length)]).join("");
  };
  const b = el("button", { type: "button", id: "random", text: "random input" });
  b.addEventListener("click", () => choose(draw()));
  box.replaceChildren(b, el("span", {
    class: "note", text: ` or type one of the ${info.n_inputs.toLocaleString("en")} inputs`,
  }));
}

// --- the fixed panels ---------------------------------------------------------------------------

// Every parameter as a heatmap, named as in the model (W_E, blocks.0.attn.W_Q, ln_f.weight, ...),
// all on one colour scale; with several layers, grouped: embeddings, each layer, the final norm.
function weightGroup(name) {
  const m = name.match(/^blocks\.(\d+)\./);
  return m ? `layer ${m[1]}` : name.startsWith("ln_f") ? "final LayerNorm" : "embeddings";
}

function renderWeights(weights, nLayer) {
  const hover = $("hover");
  const vmax = Math.max(1e-9, ...weights.flatMap((w) => w.values.map(Math.abs)));
  $("weights-legend").replaceChildren(legend("signed", vmax, "one scale for every weight"));
  const figures = weights.map((w) => {
    const shape = w.shape.length === 1 ? [1, w.shape[0]] : w.shape;
    const cols = shape[shape.length - 1];
    const rows = w.values.length / cols;
    const matrix = [];
    for (let r = 0; r < rows; r++) matrix.push(w.values.slice(r * cols, (r + 1) * cols));
    const index = (r, c) => {  // row-major index back to the tensor's own indices
      const flat = r * cols + c;
      const idx = [];
      let rest = flat;
      for (let d = w.shape.length - 1; d >= 0; d--) {
        idx.unshift(rest % w.shape[d]);
        rest = Math.floor(rest / w.shape[d]);
      }
      return idx.join(", ");
    };
    const rowLabels = w.shape.length === 3
      ? matrix.map((_, r) => `h${Math.floor(r / w.shape[1])} ${r % w.shape[1]}`)
      : matrix.map((_, r) => String(r));
    return heatmap(matrix, {
      rows: rowLabels, kind: "signed", vmax, legend: false, compact: true, cls: "weights",
      title: `${w.name} [${w.shape.join("×")}]`, part: weightNodes(w.name),
      tip: (r, c, v) => `${w.name}[${index(r, c)}] = ${v.toFixed(4)}`,
    });
  });
  const panel = $("weights");
  if (nLayer > 1) {
    const groups = new Map();
    weights.forEach((w, i) => {
      const g = weightGroup(w.name);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push(figures[i]);
    });
    panel.replaceChildren(...[...groups].map(([g, figs]) =>
      el("div", { class: "weight-group", "data-group": g }, el("h3", { text: g }),
         el("div", { class: "row" }, ...figs))));
  } else {
    panel.replaceChildren(...figures);
  }
  panel.addEventListener("mouseover", (event) => {
    const tip = event.target.dataset && event.target.dataset.tip;
    if (tip) hover.textContent = tip;
  });
  const total = weights.reduce((n, w) => n + w.values.length, 0);
  panel.dataset.count = String(total);
}

function renderCurve(curve) {
  const box = $("curve");
  if (!curve.rows.length) { box.textContent = curve.note; return; }
  const W = 720, H = 260, pad = { l: 52, r: 52, t: 12, b: 34 };
  const steps = curve.rows.map((r) => r[0]);
  // a null loss is a diverged (NaN) step: no point is drawn for it, rather than a fake 1e-9
  const losses = curve.rows.map((r) => (r[1] === null ? null : Math.log10(Math.max(r[1], 1e-9))));
  const finite = losses.filter((l) => l !== null);
  const x0 = steps[0], x1 = Math.max(steps[steps.length - 1], x0 + 1);
  const lo = finite.length ? Math.floor(Math.min(...finite)) : 0;
  const hi = Math.ceil(Math.max(...finite, lo + 1));
  const sx = (s) => pad.l + (s - x0) / (x1 - x0) * (W - pad.l - pad.r);
  const sl = (l) => pad.t + (hi - l) / (hi - lo) * (H - pad.t - pad.b);
  const sc = (c) => pad.t + (1 - c / curve.total) * (H - pad.t - pad.b);
  const line = (ys, color) => {
    const points = curve.rows.flatMap((r, i) =>
      (ys[i] === null ? [] : [`${sx(r[0]).toFixed(1)},${ys[i].toFixed(1)}`]));
    return `<polyline fill="none" stroke="${color}" stroke-width="1.6" ` +
           `points="${points.join(" ")}"/>`;
  };
  let svgText = `<svg xmlns="${SVG_NS}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" ` +
                `role="img" aria-label="training curve">`;
  for (let e = lo; e <= hi; e++) {
    svgText += `<line x1="${pad.l}" x2="${W - pad.r}" y1="${sl(e)}" y2="${sl(e)}" stroke="#eee"/>` +
               `<text x="${pad.l - 6}" y="${sl(e) + 4}" text-anchor="end" font-size="11" ` +
               `fill="#c0392b">1e${e}</text>`;
  }
  for (const c of [0, curve.total / 3, 2 * curve.total / 3, curve.total]) {
    svgText += `<text x="${W - pad.r + 6}" y="${sc(c) + 4}" font-size="11" fill="#2f7de1">` +
               `${Math.round(c)}</text>`;
  }
  svgText += line(losses.map((l) => (l === null ? null : sl(l))), "#c0392b") +
             line(curve.rows.map((r) => sc(r[2])), "#2f7de1");
  svgText += `<text x="${W / 2}" y="${H - 8}" text-anchor="middle" font-size="12">step ` +
             `(0 to ${steps[steps.length - 1]})</text>` +
             `<text x="${pad.l}" y="${pad.t + 10}" font-size="12" fill="#c0392b" dx="6">loss (log)</text>` +
             `<text x="${W - pad.r}" y="${pad.t + 10}" font-size="12" fill="#2f7de1" ` +
             `text-anchor="end" dx="-6">inputs sorted (of ${curve.total})</text></svg>`;
  box.innerHTML = svgText;
}

function renderParams(p) {
  const table = $("params");
  table.replaceChildren(el("tr", {}, el("th", { text: "part" }), el("th", { text: "shape" }),
                           el("th", { text: "parameters" })));
  for (const r of p.rows) {
    table.append(el("tr", {}, el("td", { text: r.part }), el("td", { text: r.formula }),
                    el("td", { class: "count", text: String(r.count) })));
  }
  table.append(el("tr", { class: "total" }, el("td", { text: "trainable" }), el("td"),
                  el("td", { class: "count", text: String(p.total) })));
}

function describeArch(arch) {
  const positions = { learned: "learned positions", sinusoidal: "sinusoidal positions",
                      none: "no positions" }[arch.positions];
  const parts = [`${arch.n_layer} block${arch.n_layer > 1 ? "s" : ""}`,
                 `stream width ${arch.n_embd}`, `${arch.n_head} head${arch.n_head > 1 ? "s" : ""}` +
                 ` of width ${arch.d_head}`, arch.d_mlp ? `MLP width ${arch.d_mlp}` : "no MLP",
                 NORMS[arch.norm] ?? "no norm", positions];
  return parts.join(" · ");
}

// --- start --------------------------------------------------------------------------------------

async function main() {
  const form = $("form"), input = $("input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sortNow(input.value);
  });
  // as you type: one request once typing pauses, none for a text already asked about
  input.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      typing = null;
      if (input.value !== asked) sortInput(input.value);
    }, TYPE_PAUSE_MS);
  });
  $("step-slider").addEventListener("input", (event) => showStep(Number(event.target.value) - 1));
  document.addEventListener("mouseover", (event) => lightUp(event.target));
  document.addEventListener("focusin", (event) => lightUp(event.target));
  document.addEventListener("focusout", () => lightUp(null));
  try {
    INFO = await getJSON("/api/info");
    $("model-info").textContent = `${INFO.model} · ${INFO.about} · type ${INFO.task}`;
    $("hint").textContent = `${INFO.task}`;
    if (INFO.example !== "caa") input.value = INFO.example;  // the page's default is the seed's
    $("diagram").replaceChildren(drawDiagram(INFO.arch));
    $("arch").textContent = describeArch(INFO.arch);
    renderPicker(INFO);
    const [params, weights, curve] = await Promise.all(
      ["/api/params", "/api/weights", "/api/curve"].map((u) => getJSON(u)));
    renderParams(params);
    renderWeights(weights.weights, INFO.n_layer);
    renderCurve(curve);
    await sortNow(input.value);
  } catch (e) {
    $("error").textContent = `could not load the model: ${e.message}`;
    $("error").hidden = false;
  }
  // first render: time from navigation start until the first trace is on screen
  window.zeptoFirstRender = performance.now();
  document.body.dataset.ready = "1";
}

main();
