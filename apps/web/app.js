// gensuite web app: tabs, jobs with progress, the attribute prompt builder and the 3-D skeleton viewer.
// Plain JS, no dependencies, nothing fetched from outside this server.
"use strict";

const INFO = window.GENSUITE_INFO || { attributes: [], regions: [], layouts: ["vertical", "horizontal"] };
const $ = (sel, root = document) => root.querySelector(sel);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

class UserError extends Error {}

// ---------------------------------------------------------------------------------------------- server calls
async function api(url, options = {}) {
  let r;
  try {
    r = await fetch(url, options);
  } catch (e) {
    throw new UserError("cannot reach the gensuite server (is it still running?)");
  }
  let body;
  try { body = await r.json(); } catch (e) { throw new UserError(`the server answered ${r.status} without a message`); }
  if (body && body.error && body.state === undefined) throw new UserError(body.error);
  if (!r.ok) throw new UserError(`the server answered ${r.status}`);
  return body;
}

async function upload(file) {
  if (!file.size) throw new UserError(`the file ${file.name} is empty`);
  return api("/api/upload?name=" + encodeURIComponent(file.name), { method: "POST", body: file });
}

// One form = one job at a time: button disabled, progress bar, status text, error box.
function jobUI(form) {
  return { form, button: $("button.run", form), bar: $(".status progress", form), msg: $(".status .msg", form),
           error: $("pre.error", form) };
}

function showError(ui, message) {
  ui.error.textContent = message;
  ui.error.hidden = false;
}

async function runJob(ui, task, makeParams, render) {
  ui.error.hidden = true;
  ui.error.textContent = "";
  ui.button.disabled = true;
  ui.bar.hidden = false;
  ui.bar.removeAttribute("value");
  ui.msg.textContent = "starting";
  ui.form.dataset.state = "running";
  try {
    const params = await makeParams((m) => { ui.msg.textContent = m; });
    let s = await api("/api/run/" + task, { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify(params) });
    const id = s.job;
    while (s.state === "queued" || s.state === "running") {
      await sleep(250);
      s = await api("/api/job/" + id);
      if (s.progress === null || s.progress === undefined) ui.bar.removeAttribute("value");
      else ui.bar.value = s.progress;
      ui.msg.textContent = s.message + (s.elapsed ? ` · ${s.elapsed.toFixed(1)} s` : "");
    }
    if (s.state === "error") throw new UserError(s.error || "failed");
    await render(s.result);
    ui.msg.textContent = s.message;
    ui.form.dataset.state = "done";
  } catch (e) {
    showError(ui, e instanceof UserError ? e.message : `unexpected error in the page: ${e.message || e}`);
    ui.msg.textContent = "";
    ui.form.dataset.state = "error";
  } finally {
    ui.button.disabled = false;
    ui.bar.hidden = true;
  }
}

function intOrNull(el) { return el.value.trim() === "" ? null : Number(el.value); }

function downloadLinks(el, items) {
  el.replaceChildren(...items.map(([label, href, name]) => {
    const a = document.createElement("a");
    a.href = href; a.textContent = label; if (name) a.download = name;
    return a;
  }));
}

// ---------------------------------------------------------------------------------------------- tabs
const opened = new Set();
function selectTab(name) {
  if (!$(`#panel-${name}`)) name = "attributes";
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", b.dataset.tab === name);
  for (const p of document.querySelectorAll("main > section")) p.hidden = p.id !== `panel-${name}`;
  if (!opened.has(name)) { opened.add(name); (onFirstOpen[name] || (() => {}))(); }
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
}
document.querySelectorAll("#tabs button").forEach((b) => b.addEventListener("click", () => selectTab(b.dataset.tab)));
const onFirstOpen = {};

// ---------------------------------------------------------------------------------------------- attributes
// The prompt box is the truth; the toggles read it and edit it term by term (weights and boxes are kept).
const TERM_RE = /^(?:([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*\*\s*)?(~)?\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:@\s*(.+?))?\s*$/;
function parseTerms(text) {
  return text.split("&").map((s) => s.trim()).filter(Boolean).map((raw) => {
    const m = TERM_RE.exec(raw);
    return m ? { weight: m[1] || "", neg: !!m[2], name: m[3], region: m[4] || "", raw } : { raw };
  });
}
function formatTerm(t) {
  if (!t.name) return t.raw;
  return (t.weight ? t.weight + "*" : "") + (t.neg ? "~" : "") + t.name + (t.region ? "@" + t.region : "");
}

function setupAttributes() {
  const prompt = $("#attr-prompt"), body = $("#attr-toggles tbody");
  for (const a of INFO.attributes) {
    const tr = document.createElement("tr");
    tr.dataset.attribute = a;
    const radio = (v) => `<td><input type="radio" name="attr-${a}" value="${v}" aria-label="${a} ${v}"></td>`;
    tr.innerHTML = `<td>${a}</td>${radio("on")}${radio("off")}${radio("any")}<td><select aria-label="${a} region">` +
      `<option value="">whole image</option>${INFO.regions.map((r) => `<option>${r}</option>`).join("")}</select></td>`;
    body.appendChild(tr);
  }
  const syncToggles = () => {
    const terms = parseTerms(prompt.value);
    for (const tr of body.rows) {
      const a = tr.dataset.attribute, t = terms.find((x) => x.name === a);
      const state = t ? (t.neg || (t.weight && Number(t.weight) < 0) ? "off" : "on") : "any";
      tr.querySelector(`input[value="${state}"]`).checked = true;
      const sel = tr.querySelector("select");
      const region = t ? t.region : "";
      if (region && ![...sel.options].some((o) => o.value === region)) sel.add(new Option(region, region));
      sel.value = region;
    }
  };
  const edit = (a) => {
    const tr = body.querySelector(`tr[data-attribute="${a}"]`);
    const state = tr.querySelector("input:checked").value, region = tr.querySelector("select").value;
    let terms = parseTerms(prompt.value);
    const i = terms.findIndex((x) => x.name === a);
    if (state === "any") {
      if (i >= 0) terms.splice(i, 1);
    } else {
      const t = i >= 0 ? terms[i] : { weight: "", name: a };
      if (t.weight && Number(t.weight) < 0) t.weight = t.weight.replace(/^-/, "");
      t.neg = state === "off";
      t.region = region;
      if (i < 0) terms.push(t);
    }
    prompt.value = terms.map(formatTerm).join(" & ");
  };
  body.addEventListener("change", (e) => {
    const tr = e.target.closest("tr");
    if (!tr) return;
    if (e.target.tagName === "SELECT" && tr.querySelector("input:checked").value === "any")
      tr.querySelector('input[value="on"]').checked = true;  // choosing a region switches the attribute on
    edit(tr.dataset.attribute);
  });
  prompt.addEventListener("input", syncToggles);
  syncToggles();

  const form = $("#attr-form"), ui = jobUI(form);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    $("#attr-understood").replaceChildren();
    runJob(ui, "attributes", async (status) => {
      const files = [...$("#attr-images").files];
      const images = [];
      for (const f of files) {
        checkImageFile(f);
        status(`uploading ${f.name}`);
        images.push((await upload(f)).id);
      }
      return { prompt: prompt.value, images, num: intOrNull($("#attr-num")), seed: intOrNull($("#attr-seed")),
               steps: intOrNull($("#attr-steps")), guidance: intOrNull($("#attr-guidance")) };
    }, async (r) => {
      const img = $("#attr-image");
      await loadImage(img, r.image);
      const what = [r.images.length ? r.images.map((n) => `Img(${n})`).join(" & ") : "", r.prompt].filter(Boolean);
      $("#attr-meta").textContent = `${r.num} images of ${r.size.join("×")} for “${what.join(" & ") || "(unconditional)"}” ` +
        `in ${r.seconds.toFixed(1)} s`;
      showUnderstood($("#attr-understood"), r);
    });
  });
}

// What the server read the plain words / images as, and its notes (e.g. an image resized).
function showUnderstood(ul, r) {
  const items = (r.understood || []).map((t) => ["understood: " + t, ""]).concat((r.notes || []).map((t) => [t, "note"]));
  ul.replaceChildren(...items.map(([t, cls]) => {
    const li = document.createElement("li");
    li.textContent = t; if (cls) li.className = cls;
    return li;
  }));
}

// A first check in the page; the server reads every upload again and says what is wrong with it.
function checkImageFile(f) {
  if (!f.size) throw new UserError(`the file ${f.name} is empty`);
  if (f.type && !f.type.startsWith("image/"))
    throw new UserError(`${f.name} is not an image (${f.type}); upload a PNG or JPEG face`);
}

function setupEdit() {
  const region = $("#edit-region"), strength = $("#edit-strength"), shown = $("#edit-strength-value");
  for (const r of INFO.regions) region.add(new Option(r, r));
  const showStrength = () => { shown.textContent = Number(strength.value).toFixed(2); };
  strength.addEventListener("input", showStrength);
  showStrength();
  const form = $("#edit-form"), ui = jobUI(form);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    $("#edit-understood").replaceChildren();
    runJob(ui, "attributes_edit", async (status) => {
      const f = $("#edit-image").files[0];
      if (!f) throw new UserError("choose the face to edit first (a PNG or JPEG image)");
      checkImageFile(f);
      status(`uploading ${f.name}`);
      const up = await upload(f);
      return { image: up.id, prompt: $("#edit-prompt").value, region: region.value, strength: Number(strength.value),
               num: intOrNull($("#edit-num")), seed: intOrNull($("#edit-seed")), steps: intOrNull($("#edit-steps")) };
    }, async (r) => {
      await loadImage($("#edit-input"), r.input);
      await loadImage($("#edit-output"), r.image);
      $("#edit-meta").textContent = `${r.num} edits of ${r.source}: “${r.prompt}” in region ${r.region}, strength ` +
        `${r.strength.toFixed(2)}, in ${r.seconds.toFixed(1)} s`;
      showUnderstood($("#edit-understood"), r);
    });
  });
}

function loadImage(img, src) {
  return new Promise((resolve, reject) => {
    img.onload = () => { img.hidden = false; resolve(); };
    img.onerror = () => reject(new UserError("the generated image could not be loaded"));
    img.src = src;
  });
}

// ---------------------------------------------------------------------------------------------- calligraphy
function setupCalligraphy() {
  const layout = $("#cal-layout");
  for (const l of INFO.layouts) layout.add(new Option(l, l));
  const list = $("#cal-style-list"), mix = $("#cal-style");
  list.addEventListener("change", () => { if (list.value) mix.value = list.value; pickMode("style"); });
  mix.addEventListener("input", () => pickMode("style"));
  $("#cal-refs").addEventListener("change", () => pickMode("references"));
  $("#cal-style-prompt").addEventListener("input", () => pickMode("prompt"));
  const pickMode = (m) => { document.querySelector(`input[name="cal-mode"][value="${m}"]`).checked = true; };

  const form = $("#cal-form"), ui = jobUI(form);
  onFirstOpen.calligraphy = async () => {
    try {
      const r = await api("/api/styles");
      const adapted = r.adapted || [];
      const group = document.createElement("optgroup");
      group.label = "adapted (calligraphy-adapt)";
      group.append(...adapted.map((s) => new Option(s, s)));
      list.replaceChildren(new Option("— choose —", ""), ...r.styles.map((s) => new Option(s, s)),
                           ...(adapted.length ? [group] : []));
      if (!mix.value && r.styles.length) { mix.value = r.styles.includes("gyosho") ? "gyosho" : r.styles[0]; }
      list.value = r.styles.includes(mix.value) || adapted.includes(mix.value) ? mix.value : "";
    } catch (e) {
      list.replaceChildren(new Option("(styles unavailable)", ""));
      showError(ui, e.message);
    }
  };
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    runJob(ui, "calligraphy", async (status) => {
      const mode = document.querySelector('input[name="cal-mode"]:checked').value;
      const p = { text: $("#cal-text").value, mode, seed: intOrNull($("#cal-seed")), steps: intOrNull($("#cal-steps")),
                  layout: layout.value };
      if (mode === "style") p.style = mix.value;
      if (mode === "prompt") p.style_prompt = $("#cal-style-prompt").value;
      if (mode === "references") {
        const files = [...$("#cal-refs").files];
        if (!files.length) throw new UserError("choose at least one reference image of the style to imitate");
        p.references = [];
        for (const f of files) { status(`uploading ${f.name}`); p.references.push((await upload(f)).id); }
      }
      return p;
    }, async (r) => {
      await loadImage($("#cal-image"), r.image);
      const v = $("#cal-video");
      v.src = r.video; v.hidden = false; v.play().catch(() => {});
      $("#cal-meta").textContent = `${r.characters} characters in ${r.seconds.toFixed(1)} s`;
      downloadLinks($("#cal-downloads"), [["work (PNG)", r.image, "work.png"], ["writing video (MP4)", r.video, "work.mp4"]]);
    });
  });
}

// ---------------------------------------------------------------------------------------------- dance
function setupDance() {
  const form = $("#dance-form"), ui = jobUI(form);
  const viewer = new SkeletonViewer($("#skeleton"), $("#dance-video"));
  window.gensuiteViewer = viewer;
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    runJob(ui, "dance", async (status) => {
      const file = $("#dance-audio").files[0];
      if (!file) throw new UserError("choose a music file first (wav, mp3, ogg or flac)");
      status(`uploading ${file.name}`);
      const up = await upload(file);
      return { audio: up.id, seconds: intOrNull($("#dance-seconds")), seed: intOrNull($("#dance-seed")),
               steps: intOrNull($("#dance-steps")) };
    }, async (r) => {
      const data = await api(r.joints);
      const v = $("#dance-video");
      v.src = r.video; v.hidden = false;
      $("#dance-viewer").hidden = false;
      viewer.setData(data);
      $("#dance-meta").textContent = `${r.frames} frames (${r.music_seconds.toFixed(1)} s at ${r.fps} FPS) in ` +
        `${r.seconds.toFixed(1)} s`;
      const base = (u) => decodeURIComponent(u.split("?")[0].split("/").pop());
      downloadLinks($("#dance-downloads"), [["video with music (MP4)", r.video, base(r.video)],
        ["BVH", r.bvh, base(r.bvh)], ["NPZ", r.npz, base(r.npz)]]);
    });
  });
}

// A perspective view of the 24 SMPL joints (y up, metres), drawn on a 2-D canvas: orbit by dragging, zoom by
// wheel; it plays on its own or follows the video's time.
class SkeletonViewer {
  constructor(canvas, video) {
    this.canvas = canvas; this.ctx = canvas.getContext("2d"); this.video = video;
    this.yaw = 0.5; this.pitch = 0.18; this.dist = 3.6;
    this.frames = null; this.frame = 0; this.playing = true; this.clock = 0; this.last = null; this.draws = 0;
    this.slider = $("#skel-frame"); this.sync = $("#skel-sync");
    const play = $("#skel-play");
    play.addEventListener("click", () => {
      this.playing = !this.playing; play.textContent = this.playing ? "Pause" : "Play";
      if (this.sync.checked && this.video) (this.playing ? this.video.play() : this.video.pause())?.catch?.(() => {});
    });
    this.slider.addEventListener("input", () => {
      this.frame = Number(this.slider.value); this.clock = this.frame / this.fps;
      if (this.sync.checked && this.video && this.video.duration) this.video.currentTime = this.clock;
      this.draw();
    });
    let drag = null;
    canvas.addEventListener("pointerdown", (e) => { drag = [e.clientX, e.clientY]; canvas.setPointerCapture(e.pointerId); });
    canvas.addEventListener("pointerup", () => { drag = null; });
    canvas.addEventListener("pointermove", (e) => {
      if (!drag) return;
      this.yaw += (e.clientX - drag[0]) * 0.01;
      this.pitch = Math.max(-1.2, Math.min(1.2, this.pitch + (e.clientY - drag[1]) * 0.01));
      drag = [e.clientX, e.clientY]; this.draw();
    });
    canvas.addEventListener("wheel", (e) => {
      e.preventDefault(); this.dist = Math.max(1.2, Math.min(12, this.dist * Math.exp(e.deltaY * 0.001))); this.draw();
    }, { passive: false });
    requestAnimationFrame((t) => this.tick(t));
  }

  setData(data) {
    this.fps = data.fps; this.parents = data.parents; this.names = data.names;
    this.frames = data.frames;
    let floor = Infinity;
    for (const f of this.frames) for (let j = 1; j < f.length; j += 3) floor = Math.min(floor, f[j]);
    this.floor = floor;
    this.frame = 0; this.clock = 0;
    this.slider.max = String(this.frames.length - 1); this.slider.value = "0";
    this.side = this.names.map((n) => (n.startsWith("left") ? 1 : n.startsWith("right") ? -1 : 0));
    this.draw();
  }

  tick(t) {
    if (this.frames) {
      const dt = this.last === null ? 0 : (t - this.last) / 1000;
      if (this.sync.checked && this.video && !this.video.paused && this.video.readyState >= 2) {
        this.clock = this.video.currentTime;
      } else if (this.playing) {
        this.clock = (this.clock + dt) % (this.frames.length / this.fps);
      }
      const f = Math.min(this.frames.length - 1, Math.floor(this.clock * this.fps));
      if (f !== this.frame || this.draws === 0) { this.frame = f; this.slider.value = String(f); this.draw(); }
    }
    this.last = t;
    requestAnimationFrame((t2) => this.tick(t2));
  }

  project(x, y, z, target) {
    const vx = x - target[0], vy = y - target[1], vz = z - target[2];
    const cy = Math.cos(this.yaw), sy = Math.sin(this.yaw), cp = Math.cos(this.pitch), sp = Math.sin(this.pitch);
    const x1 = cy * vx + sy * vz, z1 = -sy * vx + cy * vz;        // yaw about y
    const y2 = cp * vy - sp * z1, z2 = sp * vy + cp * z1;          // pitch about x
    const depth = this.dist - z2;                                   // the camera sits at +z, looking at the target
    if (depth < 0.05) return null;
    const f = this.canvas.height * 1.1;
    return [this.canvas.width / 2 + (f * x1) / depth, this.canvas.height / 2 - (f * y2) / depth, depth];
  }

  draw() {
    const ctx = this.ctx, W = this.canvas.width, H = this.canvas.height;
    ctx.fillStyle = "#10151c"; ctx.fillRect(0, 0, W, H);
    if (!this.frames) return;
    const p = this.frames[this.frame];
    const target = [p[0], this.floor + 0.85, p[2]];                 // follow the pelvis over the floor
    // floor grid, 0.5 m cells, in world coordinates (so the dancer's travel shows)
    ctx.strokeStyle = "#2a3442"; ctx.lineWidth = 1;
    const g0x = Math.round(p[0] / 0.5) * 0.5, g0z = Math.round(p[2] / 0.5) * 0.5;
    for (let k = -6; k <= 6; k++) {
      for (const [a, b] of [[[g0x + k * 0.5, g0z - 3], [g0x + k * 0.5, g0z + 3]], [[g0x - 3, g0z + k * 0.5], [g0x + 3, g0z + k * 0.5]]]) {
        const s = this.project(a[0], this.floor, a[1], target), e = this.project(b[0], this.floor, b[1], target);
        if (s && e) { ctx.beginPath(); ctx.moveTo(s[0], s[1]); ctx.lineTo(e[0], e[1]); ctx.stroke(); }
      }
    }
    const pts = [];
    for (let j = 0; j < this.parents.length; j++) pts.push(this.project(p[3 * j], p[3 * j + 1], p[3 * j + 2], target));
    // shadow
    ctx.fillStyle = "rgba(0,0,0,0.35)";
    for (let j = 0; j < this.parents.length; j++) {
      const s = this.project(p[3 * j], this.floor, p[3 * j + 2], target);
      if (s) { ctx.beginPath(); ctx.arc(s[0], s[1], 3, 0, 2 * Math.PI); ctx.fill(); }
    }
    const colour = (j) => (this.side[j] > 0 ? "#4aa3ff" : this.side[j] < 0 ? "#ff6b5b" : "#e6e9ee");
    ctx.lineCap = "round";
    for (let j = 1; j < this.parents.length; j++) {
      const a = pts[j], b = pts[this.parents[j]];
      if (!a || !b) continue;
      ctx.strokeStyle = colour(j); ctx.lineWidth = Math.max(2, 14 / ((a[2] + b[2]) / 2));
      ctx.beginPath(); ctx.moveTo(a[0], a[1]); ctx.lineTo(b[0], b[1]); ctx.stroke();
    }
    for (let j = 0; j < pts.length; j++) {
      const a = pts[j];
      if (!a) continue;
      ctx.fillStyle = colour(j); ctx.beginPath(); ctx.arc(a[0], a[1], Math.max(2.5, 16 / a[2]), 0, 2 * Math.PI); ctx.fill();
    }
    ctx.fillStyle = "#8fa0b3"; ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(`frame ${this.frame + 1}/${this.frames.length}  ${(this.frame / this.fps).toFixed(2)} s`, 10, H - 10);
    this.draws++;
    this.canvas.dataset.frame = String(this.frame);
    this.canvas.dataset.draws = String(this.draws);
  }
}

// ---------------------------------------------------------------------------------------------- models
function setupModels() {
  onFirstOpen.models = async () => {
    const root = $("#model-cards");
    try {
      const r = await api("/api/models");
      root.replaceChildren(...r.models.map((m) => {
        const card = document.createElement("article");
        card.className = "card"; card.id = "card-" + m.name;
        card.innerHTML = `<p class="meta">checkpoints/${m.name}/README.md</p>` + m.html;
        return card;
      }));
      if (!r.models.length) root.innerHTML = '<p class="meta">no model cards found under checkpoints/</p>';
    } catch (e) {
      root.innerHTML = "";
      const pre = document.createElement("pre"); pre.className = "error"; pre.textContent = e.message; root.appendChild(pre);
    }
  };
}

setupAttributes();
setupEdit();
setupCalligraphy();
setupDance();
setupModels();
selectTab((location.hash || "#attributes").slice(1));
document.body.dataset.ready = "1";
