// fastt2i serve: the live-editing page. Plain JS over the /v1 API; no build step, nothing fetched from outside.
"use strict";

const $ = (id) => document.getElementById(id);
const STRIP = 8;          // seeds in the strip
const GAN_FRAMES = 16;    // interpolation frames (the alpha sliders have GAN_FRAMES - 1 steps)
const PAELLA_FRAMES = 8;
const state = { models: [], model: null, stripBase: 0, version: 0, blob: null, url: null, gifUrl: null };
window.fastt2i = state;  // for debugging from the console

// ------------------------------------------------------------------------------------------------ requests
async function post(path, body, form) {
  const init = form ? { method: "POST", body: form }
    : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
  const t0 = performance.now();
  const r = await fetch(path, init);
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).error || msg; } catch (e) { /* not JSON */ }
    throw new Error(`${r.status}: ${msg}`);
  }
  return { response: r, ms: performance.now() - t0 };
}

function setStatus(text, error = false) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", error);
}

// Latest wins: one request in flight; a slider moved meanwhile replaces whatever was waiting behind it.
let inflight = false;
let pending = null;
function render(label, makeRequest) {
  pending = { label, makeRequest };
  if (!inflight) pump();
}
async function pump() {
  while (pending) {
    const job = pending;
    pending = null;
    inflight = true;
    try {
      const { response, ms } = await job.makeRequest();
      const blob = await response.blob();
      const rows = response.headers.get("x-batch-rows");
      const compute = response.headers.get("x-compute-ms");
      const cached = response.headers.get("x-frames-cached") === "1" ? ", cached frames" : "";
      showImage(blob, `${job.label}: ${ms.toFixed(0)} ms` +
        (compute ? ` (compute ${compute} ms, batch ${rows}${cached})` : ""));
    } catch (e) {
      setStatus(`${job.label}: ${e.message}`, true);
    }
    inflight = false;
  }
}

function showImage(blob, text) {
  if (state.url) URL.revokeObjectURL(state.url);
  state.url = URL.createObjectURL(blob);
  state.blob = blob;
  const img = $("main");
  img.src = state.url;
  img.dataset.version = String(++state.version);
  $("download").href = state.url;
  setStatus(text);
}

// ------------------------------------------------------------------------------------------------ parameters
const isPaella = () => state.model && state.model.kind === "paella";
const num = (id) => Number($(id).value);
const seedA = () => Math.max(0, Math.floor(num("seed-a")) || 0);
const seedB = () => Math.max(0, Math.floor(num("seed-b")) || 0);
const promptA = () => $("prompt-a").value;
const promptB = () => $("prompt-b").value;

function sampler() {
  return { steps: num("steps"), cfg: num("cfg"), temperature: [num("temp0"), num("temp1")], sampler: $("sampler").value };
}
function look() {  // the settings every image of the current model shares
  return isPaella() ? sampler() : { truncation: num("psi") };
}

const requests = {
  generate: () => post("/v1/generate", { model: state.model.name, prompts: [promptA()], seeds: [seedA()], ...look() }),
  prompt: (i, frames) => post("/v1/edit/interpolate", {
    model: state.model.name, kind: "prompt", prompt_a: promptA(), prompt_b: promptB(), seed: seedA(), frames,
    alpha: i / (frames - 1), ...look() }),
  seed: (i) => post("/v1/edit/interpolate", {
    model: state.model.name, kind: "seed", prompt: promptA(), seed: seedA(), seed_b: seedB(), frames: GAN_FRAMES,
    alpha: i / (GAN_FRAMES - 1), truncation: num("psi") }),
  style: () => post("/v1/edit/mix", {
    model: state.model.name, kind: "style", prompt: promptA(), seed_a: seedA(), seed_b: seedB(),
    cutoff: num("cutoff"), truncation: num("psi") }),
  promptMix: () => {
    const n = state.model.num_ws;
    let start = num("pmix-start"), stop = num("pmix-stop");
    if (stop <= start) stop = Math.min(n, start + 1);
    const parts = [[promptA(), 0, start], [promptB(), start, stop], [promptA(), stop, n]]
      .filter(([, a, b]) => b > a).map(([prompt, a, b]) => ({ prompt, start: a, stop: b }));
    return post("/v1/edit/mix", { model: state.model.name, kind: "prompt", parts, seed: seedA(), truncation: num("psi") });
  },
};

// ------------------------------------------------------------------------------------------------ sliders
function showValue(id) {
  const el = $(id);
  const out = document.querySelector(`output[for="${id}"]`);
  if (!out) return;
  const v = Number(el.value);
  if (id === "alpha" || id === "seed-alpha" || id === "paella-alpha") out.textContent = (v / Number(el.max)).toFixed(2);
  else if (el.step && el.step.includes(".")) out.textContent = v.toFixed(2);
  else out.textContent = String(v);
}

const sliderActions = {
  psi: () => render("truncation", requests.generate),
  alpha: () => render("prompt interpolation", () => requests.prompt(num("alpha"), GAN_FRAMES)),
  "seed-alpha": () => render("seed interpolation", () => requests.seed(num("seed-alpha"))),
  cutoff: () => render("style mixing", requests.style),
  "pmix-start": () => render("prompt mixing", requests.promptMix),
  "pmix-stop": () => render("prompt mixing", requests.promptMix),
  steps: () => render("sampler", requests.generate),
  cfg: () => render("sampler", requests.generate),
  temp0: () => render("sampler", requests.generate),
  temp1: () => render("sampler", requests.generate),
  "paella-alpha": () => render("prompt interpolation", () => requests.prompt(num("paella-alpha"), PAELLA_FRAMES)),
};
for (const [id, action] of Object.entries(sliderActions)) {
  $(id).addEventListener("input", () => { showValue(id); action(); });
  showValue(id);
}
$("sampler").addEventListener("change", () => render("sampler", requests.generate));

// ------------------------------------------------------------------------------------------------ seed strip
async function refreshStrip() {
  const seeds = Array.from({ length: STRIP }, (_, i) => state.stripBase + i);
  const strip = $("seed-strip");
  try {
    const { response } = await post("/v1/generate", {
      model: state.model.name, prompts: [promptA()], seeds, format: "json", ...look() });
    const body = await response.json();
    strip.replaceChildren(...body.images.map((im) => {
      const fig = document.createElement("figure");
      fig.dataset.seed = im.seed;
      fig.className = im.seed === seedA() ? "a" : im.seed === seedB() ? "b" : "";
      const img = document.createElement("img");
      img.src = `data:image/png;base64,${im.png}`;
      img.alt = `seed ${im.seed}`;
      const cap = document.createElement("figcaption");
      cap.textContent = im.seed;
      fig.append(img, cap);
      fig.addEventListener("click", (ev) => {
        $(ev.shiftKey ? "seed-b" : "seed-a").value = im.seed;
        markStrip();
        render("generate", requests.generate);
      });
      return fig;
    }));
  } catch (e) {
    setStatus(`seed strip: ${e.message}`, true);
  }
}
function markStrip() {
  for (const fig of $("seed-strip").children) {
    const s = Number(fig.dataset.seed);
    fig.className = s === seedA() ? "a" : s === seedB() ? "b" : "";
  }
}
$("strip-prev").addEventListener("click", () => { state.stripBase = Math.max(0, state.stripBase - STRIP); refreshStrip(); });
$("strip-next").addEventListener("click", () => { state.stripBase += STRIP; refreshStrip(); });

function refreshAll() {
  render("generate", requests.generate);
  refreshStrip();
}
$("generate").addEventListener("click", refreshAll);
$("prompt-a").addEventListener("change", refreshAll);
$("prompt-a").addEventListener("keydown", (ev) => { if (ev.key === "Enter") refreshAll(); });
for (const id of ["seed-a", "seed-b"]) $(id).addEventListener("change", () => { markStrip(); render("generate", requests.generate); });

// ------------------------------------------------------------------------------------------------ downloads
$("download-gif").addEventListener("click", async () => {
  const frames = isPaella() ? PAELLA_FRAMES : GAN_FRAMES;
  try {
    setStatus("rendering the interpolation GIF…");
    const { response, ms } = await post("/v1/edit/interpolate", {
      model: state.model.name, kind: "prompt", prompt_a: promptA(), prompt_b: promptB(), seed: seedA(), frames,
      format: "gif", boomerang: true, ...look() });
    const blob = await response.blob();
    if (state.gifUrl) URL.revokeObjectURL(state.gifUrl);
    state.gifUrl = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = state.gifUrl;
    a.download = "interpolation.gif";
    document.body.append(a);
    a.click();
    a.remove();
    setStatus(`interpolation GIF: ${frames} frames, ${ms.toFixed(0)} ms`);
  } catch (e) {
    setStatus(`GIF: ${e.message}`, true);
  }
});

// ------------------------------------------------------------------------------------------------ inpainting
const canvas = $("mask-canvas");
const view = canvas.getContext("2d");
const mask = document.createElement("canvas");  // white on black, what is uploaded
mask.width = canvas.width;
mask.height = canvas.height;
const maskCtx = mask.getContext("2d");
function clearMask() {
  view.clearRect(0, 0, canvas.width, canvas.height);
  maskCtx.fillStyle = "#000";
  maskCtx.fillRect(0, 0, mask.width, mask.height);
}
clearMask();
let painting = false;
function paint(ev) {
  const r = canvas.getBoundingClientRect();
  const x = (ev.clientX - r.left) * canvas.width / r.width, y = (ev.clientY - r.top) * canvas.height / r.height;
  const radius = num("brush") / 2;
  view.fillStyle = "rgba(229, 62, 62, 0.45)";
  maskCtx.fillStyle = "#fff";
  for (const ctx of [view, maskCtx]) { ctx.beginPath(); ctx.arc(x, y, radius, 0, 2 * Math.PI); ctx.fill(); }
}
canvas.addEventListener("pointerdown", (ev) => { painting = true; canvas.setPointerCapture(ev.pointerId); paint(ev); });
canvas.addEventListener("pointermove", (ev) => { if (painting) paint(ev); });
canvas.addEventListener("pointerup", () => { painting = false; });
$("clear-mask").addEventListener("click", clearMask);
$("upload").addEventListener("change", () => {
  const file = $("upload").files[0];
  if (file) showImage(file, `uploaded ${file.name}`);
});

function paellaForm(extra) {
  const form = new FormData();
  form.append("image", state.blob, "image.png");
  form.append("params", JSON.stringify({ model: state.model.name, seeds: [seedA()], ...sampler(), ...extra }));
  return form;
}
$("inpaint").addEventListener("click", () => {
  mask.toBlob((maskBlob) => {
    const form = paellaForm({ prompt: promptA() });
    form.append("mask", maskBlob, "mask.png");
    render("inpainting", () => post("/v1/edit/inpaint", null, form).then((r) => { clearMask(); return r; }));
  }, "image/png");
});
$("variation").addEventListener("click", () => render("variation", () => post("/v1/edit/variation", null, paellaForm({}))));
$("outpaint").addEventListener("click", () =>
  render("outpainting", () => post("/v1/edit/outpaint", null, paellaForm({ prompt: promptA(), scale: 0.5 }))));

// ------------------------------------------------------------------------------------------------ models
function selectModel(name) {
  state.model = state.models.find((m) => m.name === name);
  const m = state.model;
  const paella = m.kind === "paella";
  $("gan-controls").hidden = paella;
  $("paella-controls").hidden = !paella;
  $("inpaint-controls").hidden = !paella;
  canvas.hidden = !paella;
  $("variation").disabled = !m.variations;
  const fd = Object.entries(m.metrics || {}).find(([k]) => k.startsWith("fd_"));
  $("model-info").textContent = `${m.family}, ${m.resolution} px` + (fd ? `, ${fd[0]} ${Number(fd[1]).toFixed(2)}` : "");
  if (paella) {
    const s = m.sampler;
    $("steps").value = s.steps;
    $("cfg").value = s.cfg;
    const t = Array.isArray(s.temperature) ? s.temperature : [s.temperature, s.temperature];
    $("temp0").value = t[0];
    $("temp1").value = t[1];
    $("sampler").value = s.mode;
  } else {
    for (const id of ["cutoff", "pmix-start", "pmix-stop"]) $(id).max = m.num_ws;
    $("cutoff").value = Math.floor(m.num_ws / 2);
    $("pmix-start").value = Math.floor(m.num_ws / 2);
    $("pmix-stop").value = m.num_ws;
    const seedSlider = $("seed-alpha");
    seedSlider.disabled = !m.seed_interpolation;
    seedSlider.parentElement.classList.toggle("disabled", !m.seed_interpolation);
    seedSlider.title = m.seed_interpolation ? "" : "seed interpolation applies to the GANs";
  }
  for (const id of Object.keys(sliderActions)) showValue(id);
  clearMask();
  refreshAll();
}

async function init() {
  try {
    const r = await fetch("/v1/models");
    state.models = (await r.json()).models;
  } catch (e) {
    setStatus(`cannot list models: ${e.message}`, true);
    return;
  }
  const select = $("model");
  for (const m of state.models) select.append(new Option(`${m.name} (${m.kind})`, m.name));
  select.addEventListener("change", () => selectModel(select.value));
  const params = new URLSearchParams(location.search);
  // ?model=NAME, else the GAN with the lowest FD on its card (live sliders are one pass each), else the first model
  const fd = (m) => { const v = Object.entries(m.metrics || {}).find(([k]) => k.startsWith("fd_")); return v ? Number(v[1]) : Infinity; };
  const gans = state.models.filter((m) => m.kind === "gan").sort((a, b) => fd(a) - fd(b));
  const first = state.models.find((m) => m.name === params.get("model")) || gans[0] || state.models[0];
  select.value = first.name;
  selectModel(first.name);
}
init();
