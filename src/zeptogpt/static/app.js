// ZeptoGPT page. Every number shown comes from the server's JSON API (the PyTorch model);
// this file only lays the numbers out and colours them: it computes nothing of the model.
"use strict";

const $ = (id) => document.getElementById(id);
let INFO = null;

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

// A labelled heatmap table. opts: {rows, cols, kind: "prob"|"signed", digits, newest, title,
// compact, tip(i, j, v) -> tooltip text, cls}
function heatmap(matrix, opts) {
  const vmax = opts.kind === "signed" ? maxAbs(matrix) : 1;
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
  return opts.title ? el("div", { class: "figure" }, el("h3", { text: opts.title }), table) : table;
}

async function getJSON(url, init) {
  const response = await fetch(url, init);
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// --- the trace ----------------------------------------------------------------------------------

const posLabels = (tokens) => tokens.map((t, i) => `${i} ${t}`);

function renderTrace(a) {
  const seen = a.token_embed.length;  // tokens the last forward pass saw
  const L = a.steps.length;
  const tokens = $("tokens");
  tokens.replaceChildren(...a.tokens.map((t, i) => {
    const role = i < L ? `x${i + 1}` : i === L ? "sep" : `y${i - L}`;
    const cls = "token" + (i > L ? " answer" : "") + (i >= seen ? " unseen" : "");
    return el("span", { class: cls }, t, el("small", { text: `${i} · ${role}` }));
  }));

  const dims = a.embed[0].map((_, j) => `e${j}`);
  const labels = posLabels(a.tokens.slice(0, seen));
  const figures = [heatmap(a.token_embed, { rows: labels, cols: dims, kind: "signed",
                                            title: "token embedding W_E[token]" })];
  if (a.pos_embed) {
    figures.push(heatmap(a.pos_embed, { rows: labels, cols: dims, kind: "signed",
                                        title: "+ position embedding W_pos[i]" }));
  }
  figures.push(heatmap(a.embed, { rows: labels, cols: dims, kind: "signed",
                                  title: "= residual stream start" }));
  $("embeddings").replaceChildren(...figures);

  $("steps").replaceChildren(...a.steps.map((s, k) => renderStep(a, s, k)));
}

// One decoding step: every layer's attention heads, every layer's MLP activations, the logits and
// the model's own probabilities (a softmax over the whole vocabulary, <sep> included), and the
// logit lens through the stream. With one layer nothing is labelled by layer.
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
    cols: s.mlp_hidden[0].map((_, j) => `m${j}`), kind: "signed",
    title: "MLP activations (after ReLU)",
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

  const lens = heatmap(a.lens_points.map((p) => s.lens[p]), {
    rows: a.lens_labels, cols: a.vocab, kind: "prob", digits: 3, cls: "lens",
    title: "logit lens p(token)",
    tip: (r, j, v) => `p(${a.vocab[j]}) ${a.lens_labels[r]} = ${v.toFixed(4)}`,
  });

  return el("div", { class: "step", "data-step": String(k + 1) },
    el("h3", {}, `Step ${k + 1}: position ${s.position} (${a.tokens[s.position]}) ` +
                 `predicts y${k + 1} = `, el("span", { class: "chosen", text: s.chosen })),
    el("div", { class: "row" },
      attention, mlp,
      el("div", { class: "figure" }, el("h3", { text: "logits and probabilities" }), logits),
      lens));
}

async function sortInput(text) {
  const error = $("error");
  try {
    const a = await getJSON("/api/trace", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ input: text }),
    });
    error.hidden = true;
    error.textContent = "";
    $("result-input").textContent = a.input;
    $("output").textContent = a.output;
    $("result").hidden = false;
    $("hint").textContent = `computed by the server in ${a.ms.toFixed(1)} ms`;
    renderTrace(a);
    $("trace-panel").hidden = false;
  } catch (e) {
    $("result").hidden = true;
    $("output").textContent = "";
    $("trace-panel").hidden = true;  // an old trace under a new input would mislead
    $("hint").textContent = INFO ? INFO.task : "";
    error.textContent = e.message;
    error.hidden = false;
  }
}

// --- the fixed panels ---------------------------------------------------------------------------

// Every parameter as a heatmap, named as in the model (W_E, blocks.0.attn.W_Q, ln_f.weight, ...);
// with several layers, grouped: embeddings, each layer, the final LayerNorm.
function weightGroup(name) {
  const m = name.match(/^blocks\.(\d+)\./);
  return m ? `layer ${m[1]}` : name.startsWith("ln_f") ? "final LayerNorm" : "embeddings";
}

function renderWeights(weights, nLayer) {
  const hover = $("hover");
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
      rows: rowLabels, kind: "signed", compact: true, cls: "weights",
      title: `${w.name} [${w.shape.join("×")}]`,
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
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" ` +
            `role="img" aria-label="training curve">`;
  for (let e = lo; e <= hi; e++) {
    svg += `<line x1="${pad.l}" x2="${W - pad.r}" y1="${sl(e)}" y2="${sl(e)}" stroke="#eee"/>` +
           `<text x="${pad.l - 6}" y="${sl(e) + 4}" text-anchor="end" font-size="11" ` +
           `fill="#c0392b">1e${e}</text>`;
  }
  for (const c of [0, curve.total / 3, 2 * curve.total / 3, curve.total]) {
    svg += `<text x="${W - pad.r + 6}" y="${sc(c) + 4}" font-size="11" fill="#2f7de1">` +
           `${Math.round(c)}</text>`;
  }
  svg += line(losses.map((l) => (l === null ? null : sl(l))), "#c0392b") +
         line(curve.rows.map((r) => sc(r[2])), "#2f7de1");
  svg += `<text x="${W / 2}" y="${H - 8}" text-anchor="middle" font-size="12">step ` +
         `(0 to ${steps[steps.length - 1]})</text>` +
         `<text x="${pad.l}" y="${pad.t + 10}" font-size="12" fill="#c0392b" dx="6">loss (log)</text>` +
         `<text x="${W - pad.r}" y="${pad.t + 10}" font-size="12" fill="#2f7de1" ` +
         `text-anchor="end" dx="-6">inputs sorted (of ${curve.total})</text></svg>`;
  box.innerHTML = svg;
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

// --- start --------------------------------------------------------------------------------------

async function main() {
  const form = $("form"), input = $("input");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sortInput(input.value);
  });
  try {
    INFO = await getJSON("/api/info");
    $("model-info").textContent = `${INFO.model} · ${INFO.about} · type ${INFO.task}`;
    $("hint").textContent = `${INFO.task}`;
    if (INFO.example !== "caa") input.value = INFO.example;  // the page's default is the seed's
    const [params, weights, curve] = await Promise.all(
      ["/api/params", "/api/weights", "/api/curve"].map((u) => getJSON(u)));
    renderParams(params);
    renderWeights(weights.weights, INFO.n_layer);
    renderCurve(curve);
    await sortInput(input.value);
  } catch (e) {
    $("error").textContent = `could not load the model: ${e.message}`;
    $("error").hidden = false;
  }
  // first render: time from navigation start until the first trace is on screen
  window.zeptoFirstRender = performance.now();
  document.body.dataset.ready = "1";
}

main();
