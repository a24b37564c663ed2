// The vidpipe console: plain JavaScript against the public /v1 API, no build step.
// The API key lives in sessionStorage only and goes out as an Authorization header; the live
// list reads /v1/jobs/stream (Server-Sent Events) through fetch, because EventSource cannot send
// a header and a key in a URL would end up in logs.
"use strict";

const KEY_STORE = "vidpipe.apiKey";
// Files up to this size go through the API as one form post; larger ones go straight to S3 in
// presigned parts (the API then only assembles them), or through the API after all when the
// bucket's CORS rules do not let this page talk to S3.
const FORM_UPLOAD_MAX = 64 * 1024 * 1024;
const TERMINAL = new Set(["Succeeded", "Failed", "Cancelled"]);

const $ = (id) => document.getElementById(id);
const state = {
  key: sessionStorage.getItem(KEY_STORE),
  jobs: new Map(),
  order: [],
  cursor: null,
  lastEventId: null,
  stream: null,
  upload: null,
  detailId: null,
  linksFetched: null,
  hls: null,
};

function say(text) {
  $("status").textContent = text;
}

function auth(extra) {
  return Object.assign({ Authorization: "Bearer " + state.key }, extra || {});
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.code ? body.code + ": " + body.message : "HTTP " + status);
    this.status = status;
    this.code = body && body.code;
  }
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = auth(opts.headers);
  const response = await fetch(path, opts);
  if (response.status === 401 && state.key) {
    signOut("The API key was refused; sign in again.");
  }
  if (!response.ok) {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    throw new ApiError(response.status, body);
  }
  return response.status === 204 ? null : response.json();
}

// -- sign in ---------------------------------------------------------------------------------

async function signIn(key) {
  state.key = key;
  try {
    await api("/v1/jobs?limit=1");
  } catch (err) {
    state.key = null;
    throw err;
  }
  sessionStorage.setItem(KEY_STORE, key);
  show(true);
  await loadJobs(true);
  startStream();
}

function signOut(message) {
  sessionStorage.removeItem(KEY_STORE);
  state.key = null;
  if (state.stream) state.stream.abort();
  state.stream = null;
  closeDetail();
  state.jobs.clear();
  state.order = [];
  $("job-list").replaceChildren();
  show(false);
  say(message || "Signed out.");
}

function show(signedIn) {
  $("signin").hidden = signedIn;
  $("upload").hidden = !signedIn;
  $("jobs").hidden = !signedIn;
  $("signout").hidden = !signedIn;
  if (!signedIn) $("key").focus();
}

$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("signin-error").textContent = "";
  const key = $("key").value.trim();
  try {
    await signIn(key);
    $("key").value = "";
    say("Signed in.");
  } catch (err) {
    $("signin-error").textContent = "Sign-in failed: " + err.message;
  }
});
$("signout").addEventListener("click", () => signOut());

// -- upload ----------------------------------------------------------------------------------

function setUploadProgress(sent, total) {
  const percent = total ? Math.floor((sent / total) * 100) : 0;
  $("upload-progress").value = percent;
  $("upload-progress").textContent = percent + "%";
  $("upload-note").textContent = percent + "% of " + formatBytes(total);
}

function formatBytes(n) {
  if (n >= 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + " MiB";
  if (n >= 1024) return (n / 1024).toFixed(1) + " KiB";
  return n + " B";
}

function send(method, url, body, headers, onProgress) {
  // XMLHttpRequest, not fetch: only it reports upload progress.
  const xhr = new XMLHttpRequest();
  const done = new Promise((resolve, reject) => {
    xhr.open(method, url);
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => resolve(xhr);
    xhr.onerror = () => reject(new Error("network error"));
    xhr.onabort = () => reject(new Error("cancelled"));
    xhr.send(body);
  });
  return { xhr, done };
}

function rejectionOf(xhr) {
  let body = null;
  try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
  return new ApiError(xhr.status, body);
}

async function formUpload(file, renditions, upload) {
  const form = new FormData();
  // Fields before the file: the API reads the options when the file part starts.
  if (renditions) form.append("renditions", renditions);
  form.append("file", file, file.name);
  const req = send("POST", "/v1/videos", form, auth(), (n) => setUploadProgress(n, file.size));
  upload.requests = [req.xhr];
  const xhr = await req.done;
  if (xhr.status !== 202) throw rejectionOf(xhr);
  return JSON.parse(xhr.responseText);
}

class StorageUnreachable extends Error {}

async function presignedUpload(file, renditions, upload) {
  const options = renditions ? { renditions: renditionList(renditions) } : null;
  const session = await api("/v1/uploads", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({
      sizeBytes: file.size,
      filename: file.name,
      contentType: file.type || "application/octet-stream",
      options,
    }),
  });
  upload.session = session;
  const sent = new Array(session.parts.length).fill(0);
  const parts = [];
  for (const part of session.parts) {
    // One part at a time keeps memory and the progress bar simple; S3 parts are 8 MiB+.
    if (upload.cancelled) throw new Error("cancelled");
    const start = (part.partNumber - 1) * session.partSize;
    const blob = file.slice(start, Math.min(start + session.partSize, file.size));
    const req = send("PUT", part.url, blob, {}, (n) => {
      sent[part.partNumber - 1] = n;
      setUploadProgress(sent.reduce((a, b) => a + b, 0), file.size);
    });
    upload.requests = [req.xhr];
    let xhr;
    try {
      xhr = await req.done;
    } catch (err) {
      // A browser refused S3's answer (no CORS rule for this page): go through the API.
      if (!upload.cancelled && parts.length === 0) throw new StorageUnreachable(err.message);
      throw err;
    }
    if (xhr.status !== 200) throw new Error("part " + part.partNumber + ": HTTP " + xhr.status);
    const etag = xhr.getResponseHeader("ETag");
    if (!etag) throw new StorageUnreachable("S3's CORS rule does not expose the ETag header");
    parts.push({ partNumber: part.partNumber, etag });
  }
  $("upload-note").textContent = "Assembling and checking the video…";
  return api(session.completeUrl, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ parts }),
  });
}

function renditionList(text) {
  return text.split(",").map((s) => s.trim().toLowerCase().replace(/p$/, "")).filter(Boolean)
    .map((h) => ({ name: h + "p", height: Number(h) }));
}

async function startUpload(file) {
  if (state.upload) return;
  const upload = { requests: [], cancelled: false, session: null, discarded: null };
  state.upload = upload;
  $("upload-start").disabled = true;
  $("upload-cancel").disabled = false;
  setUploadProgress(0, file.size);
  say("Uploading " + file.name + "…");
  const renditions = $("renditions").value.trim();
  try {
    let job;
    if (file.size <= FORM_UPLOAD_MAX) {
      job = await formUpload(file, renditions, upload);
    } else {
      try {
        job = await presignedUpload(file, renditions, upload);
      } catch (err) {
        if (!(err instanceof StorageUnreachable)) throw err;
        await discardSession(upload);
        say("S3 cannot be reached from this page (" + err.message + "); uploading through the API.");
        job = await formUpload(file, renditions, upload);
      }
    }
    setUploadProgress(file.size, file.size);
    $("upload-note").textContent = "Uploaded: job " + job.id;
    say("Uploaded " + file.name + "; job " + job.id + " created.");
    upsertJob(job);
    openDetail(job.id);
  } catch (err) {
    if (upload.cancelled) {
      await upload.discarded; // "cancelled" once the parts in S3 are gone too
      $("upload-note").textContent = "Upload cancelled.";
      say("Upload cancelled.");
    } else {
      $("upload-note").textContent = "Upload failed: " + err.message;
      say("Upload failed: " + err.message);
    }
  } finally {
    state.upload = null;
    $("upload-start").disabled = false;
    $("upload-cancel").disabled = true;
  }
}

async function cancelUpload() {
  const upload = state.upload;
  if (!upload) return;
  upload.cancelled = true;
  upload.discarded = discardSession(upload);
  for (const xhr of upload.requests) xhr.abort();
  await upload.discarded;
}

async function discardSession(upload) {
  const session = upload.session;
  upload.session = null;
  if (!session) return;
  // Discard the parts already in S3; the job is never created.
  try {
    await api("/v1/uploads/" + encodeURIComponent(session.uploadId), { method: "DELETE" });
  } catch (_) { /* the reaper removes it later */ }
}

$("upload-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const file = $("file").files[0];
  if (!file) {
    say("Choose a video file first.");
    $("file").focus();
    return;
  }
  startUpload(file);
});
$("upload-cancel").addEventListener("click", cancelUpload);

const drop = $("drop");
drop.addEventListener("dragover", (event) => {
  event.preventDefault();
  drop.classList.add("over");
});
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const file = event.dataTransfer.files[0];
  if (file) startUpload(file);
});

// -- the job list ----------------------------------------------------------------------------

async function loadJobs(fresh) {
  const query = new URLSearchParams({ limit: "20" });
  if (!fresh && state.cursor) query.set("cursor", state.cursor);
  const page = await api("/v1/jobs?" + query);
  for (const job of page.items) upsertJob(job, true);
  state.cursor = page.nextCursor;
  $("more").hidden = !page.nextCursor;
}

$("more").addEventListener("click", () => loadJobs(false).catch((e) => say(e.message)));

function upsertJob(job, older) {
  const known = state.jobs.get(job.id);
  // A late event must not take a job back: the newest updatedAt wins.
  if (known && known.updatedAt && job.updatedAt && known.updatedAt > job.updatedAt) return;
  state.jobs.set(job.id, Object.assign({}, known || {}, job));
  if (!known) {
    if (older) state.order.push(job.id);
    else state.order.unshift(job.id);
  }
  renderJob(job.id);
  if (state.detailId === job.id) renderDetail(state.jobs.get(job.id));
}

function removeJob(id) {
  state.jobs.delete(id);
  state.order = state.order.filter((x) => x !== id);
  const item = document.querySelector('[data-job="' + CSS.escape(id) + '"]');
  if (item) item.remove();
  if (state.detailId === id) closeDetail();
}

function renderJob(id) {
  const job = state.jobs.get(id);
  const list = $("job-list");
  let item = list.querySelector('[data-job="' + CSS.escape(id) + '"]');
  if (!item) {
    item = document.createElement("li");
    item.dataset.job = id;
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.addEventListener("click", () => openDetail(id));
    const phase = document.createElement("span");
    phase.className = "phase";
    const bar = document.createElement("progress");
    bar.max = 100;
    item.append(open, phase, bar);
    const index = state.order.indexOf(id);
    const next = state.order[index + 1];
    const before = next && list.querySelector('[data-job="' + CSS.escape(next) + '"]');
    list.insertBefore(item, before || null);
  }
  const [open, phase, bar] = item.children;
  open.textContent = (job.filename || "(no name)") + " · " + id;
  phase.textContent = job.phase + (job.phase === "Running" ? " " + job.progress + "%" : "");
  phase.className = "phase phase-" + job.phase;
  bar.value = job.progress || 0;
  bar.setAttribute("aria-label", "Progress of " + (job.filename || id));
}

// -- live updates (SSE over fetch) -------------------------------------------------------------

function setLive(on) {
  const badge = $("live");
  badge.textContent = on ? "live" : "offline";
  badge.classList.toggle("on", on);
}

function startStream() {
  if (state.stream) state.stream.abort();
  const controller = new AbortController();
  state.stream = controller;
  streamLoop(controller.signal);
}

async function streamLoop(signal) {
  let backoff = 1000;
  while (!signal.aborted && state.key) {
    try {
      const headers = auth({ Accept: "text/event-stream" });
      if (state.lastEventId) headers["Last-Event-ID"] = state.lastEventId;
      const response = await fetch("/v1/jobs/stream", { headers, signal });
      if (response.status === 401) {
        signOut("The API key was refused; sign in again.");
        return;
      }
      if (response.ok) {
        setLive(true);
        backoff = 1000;
        await readEvents(response.body, signal);
      } else {
        const wait = Number(response.headers.get("Retry-After"));
        if (wait > 0) backoff = wait * 1000;
      }
    } catch (_) {
      if (signal.aborted) return;
    }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, backoff));
    backoff = Math.min(backoff * 2, 30000);
  }
}

async function readEvents(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  while (!signal.aborted) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block);
    }
  }
}

function dispatch(block) {
  let event = "message";
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") data.push(value);
  }
  if (id) state.lastEventId = id;
  if (!data.length) return;
  const payload = JSON.parse(data.join("\n"));
  if (event === "job") upsertJob(payload);
  else if (event === "deleted") removeJob(payload.id);
}

// -- job detail --------------------------------------------------------------------------------

async function openDetail(id) {
  state.detailId = id;
  $("detail").hidden = false;
  $("media").hidden = true;
  $("media").dataset.loaded = "";
  state.linksFetched = null;
  stopPlayer();
  const known = state.jobs.get(id);
  if (known) renderDetail(known);
  $("detail-title").focus();
  await refreshDetail(id);
}

async function refreshDetail(id) {
  try {
    const job = await api("/v1/jobs/" + encodeURIComponent(id));
    if (state.detailId !== id) return;
    state.jobs.set(id, Object.assign({}, state.jobs.get(id) || {}, job));
    renderDetail(state.jobs.get(id));
  } catch (err) {
    say(err.message);
  }
}

function closeDetail() {
  state.detailId = null;
  stopPlayer();
  $("detail").hidden = true;
}

$("detail-close").addEventListener("click", () => {
  const id = state.detailId;
  closeDetail();
  const item = id && document.querySelector('[data-job="' + CSS.escape(id) + '"] button');
  if (item) item.focus();
});

function fact(list, name, value) {
  if (value === undefined || value === null || value === "") return;
  const dt = document.createElement("dt");
  dt.textContent = name;
  const dd = document.createElement("dd");
  dd.textContent = String(value);
  list.append(dt, dd);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : null;
}

function renderDetail(job) {
  $("detail-title").textContent = "Job " + job.id;
  $("detail-title").tabIndex = -1;
  const facts = $("facts");
  facts.replaceChildren();
  fact(facts, "Phase", job.phase);
  fact(facts, "Progress", (job.progress || 0) + "%");
  fact(facts, "File", job.filename);
  fact(facts, "Size", job.sizeBytes ? formatBytes(job.sizeBytes) : null);
  const media = job.media || {};
  fact(facts, "Duration", media.durationSeconds ? media.durationSeconds + " s" : null);
  fact(facts, "Resolution", media.width ? media.width + "×" + media.height : null);
  fact(facts, "Video codec", media.videoCodec);
  fact(facts, "Audio codec", media.audioCodec);
  fact(facts, "Attempts", job.attempts);
  fact(facts, "Created", when(job.createdAt));
  fact(facts, "Finished", when(job.finishedAt));
  $("detail-progress").value = job.progress || 0;
  $("detail-progress").textContent = (job.progress || 0) + "%";
  $("detail-error").textContent = job.error
    ? "Error " + job.error.code + ": " + job.error.message : "";
  $("job-cancel").hidden = TERMINAL.has(job.phase) || job.cancelRequested;
  if (job.phase !== "Succeeded" || $("media").dataset.loaded === job.id) return;
  if (!hasLinks(job)) {
    // The stream's snapshots carry no links: fetch them once, when the job has succeeded.
    if (state.linksFetched !== job.id) {
      state.linksFetched = job.id;
      refreshDetail(job.id);
    }
    return;
  }
  {
    $("media").dataset.loaded = job.id;
    renderMedia(job);
  }
}

$("job-cancel").addEventListener("click", async () => {
  const id = state.detailId;
  if (!id) return;
  try {
    upsertJob(await api("/v1/jobs/" + encodeURIComponent(id) + "/cancel", { method: "POST" }));
    say("Cancel requested for " + id + ".");
  } catch (err) {
    say(err.message);
  }
});

function hasLinks(job) {
  const links = job.downloads;
  return Boolean(links && (links.manifest || links.poster ||
    Object.keys(links.renditions || {}).length));
}

function renderMedia(job) {
  const links = job.downloads || {};
  $("media").hidden = false;
  $("poster").hidden = !links.poster;
  if (links.poster) $("poster").src = links.poster;
  const board = links.storyboard && links.storyboard.image;
  $("storyboard").parentElement.hidden = !board;
  if (board) $("storyboard").src = board;
  const list = $("downloads");
  list.replaceChildren();
  const add = (label, href) => {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    a.rel = "noreferrer";
    a.download = "";
    li.append(a);
    list.append(li);
  };
  for (const [name, href] of Object.entries(links.renditions || {})) add(name + " (MP4)", href);
  if (links.poster) add("Poster (JPEG)", links.poster);
  if (links.storyboard && links.storyboard.vtt) add("Storyboard (WebVTT)", links.storyboard.vtt);
  if (links.metadata) add("Metadata (JSON)", links.metadata);
  if (links.manifest) add("Manifest (JSON)", links.manifest);
  startPlayer(job.id, $("maxres").value);
}

// -- the player ----------------------------------------------------------------------------------

function stopPlayer() {
  if (state.hls) state.hls.destroy();
  state.hls = null;
  const video = $("player");
  video.removeAttribute("src");
  video.load();
  $("player-note").textContent = "";
}

async function playback(id, maxResolution) {
  // Signed playback (POST /v1/jobs/{id}/playback): same-origin /play/{token}/... paths.
  const body = maxResolution ? { maxResolution } : {};
  const answer = await api("/v1/jobs/" + encodeURIComponent(id) + "/playback", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return answer.urls || {};
}

async function startPlayer(id, maxResolution) {
  stopPlayer();
  const video = $("player");
  let urls;
  try {
    urls = await playback(id, maxResolution);
  } catch (err) {
    $("player-note").textContent = "No stream to play: " + err.message;
    return;
  }
  if (state.detailId !== id || !urls.master) return;
  // The poster and storyboard through the same tokens: this origin, whatever S3 allows.
  if (urls.poster) $("poster").src = urls.poster;
  if (urls.storyboardImage) $("storyboard").src = urls.storyboardImage;
  const url = urls.master;
  video.dataset.source = "hls";
  if (window.Hls && window.Hls.isSupported()) {
    // No worker: it would need a blob: script, which the page's policy does not allow.
    const hls = new window.Hls({ enableWorker: false });
    state.hls = hls;
    hls.on(window.Hls.Events.LEVEL_SWITCHED, (_, data) => {
      const level = hls.levels[data.level];
      if (!level) return;
      video.dataset.level = String(level.height);
      const offered = hls.levels.map((l) => l.height + "p").join(", ");
      $("player-note").textContent = "Playing " + level.height + "p; renditions offered: " +
        offered;
    });
    hls.on(window.Hls.Events.ERROR, (_, data) => {
      if (data.fatal) $("player-note").textContent = "Playback error: " + data.details;
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.src = url; // Safari plays HLS itself
  } else {
    $("player-note").textContent = "This browser cannot play HLS (hls.js is not installed).";
  }
}

$("maxres").addEventListener("change", () => {
  if (state.detailId) startPlayer(state.detailId, $("maxres").value);
});

// -- start -----------------------------------------------------------------------------------

if (state.key) {
  signIn(state.key).catch(() => signOut("The stored API key no longer works; sign in again."));
} else {
  show(false);
}
