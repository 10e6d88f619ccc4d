// The Observe page: live tiles, camera status, recording controls per room, a pan/tilt/zoom
// pad on the tiles of PTZ cameras (the page renders the pad only for operators and admins), and
// marking moments of a running recording (the Mark button or the M key).
import {api} from "./api.js";
import {LivePlayer} from "./player.js";

const PTZ_SPEED = 0.5;  // press-and-hold speed (the API's -1..1): slow enough to aim with
const PTZ_MOVES = {up: {tilt: PTZ_SPEED}, down: {tilt: -PTZ_SPEED}, left: {pan: -PTZ_SPEED},
                   right: {pan: PTZ_SPEED}, in: {zoom: PTZ_SPEED}, out: {zoom: -PTZ_SPEED}};
const pads = new Map();  // camera id -> PtzPad

/** The PTZ pad of one tile: press and hold to move, release to stop; presets to go back to. */
class PtzPad {
  constructor(tile) {
    this.box = tile.querySelector(".ptz");
    this.url = `/api/v1/cameras/${tile.dataset.cameraId}`;
    this.msg = this.box.querySelector(".ptz-msg");
    this.select = this.box.querySelector(".presets select");
    this.queue = Promise.resolve();  // one request at a time: a stop must never overtake its move
    this.moving = false;
    this.presetsLoaded = false;
    for (const button of this.box.querySelectorAll("button[data-dir]")) {
      const dir = button.dataset.dir;
      button.addEventListener("pointerdown", (ev) => { if (ev.button === 0) this.move(dir); });
      for (const end of ["pointerup", "pointerleave", "pointercancel"]) button.addEventListener(end, () => this.stop());
      button.addEventListener("contextmenu", (ev) => ev.preventDefault());  // a long touch is a hold
      // The keyboard holds too: Enter or Space down moves, up stops.
      button.addEventListener("keydown", (ev) => {
        if ((ev.key === "Enter" || ev.key === " ") && !ev.repeat) { ev.preventDefault(); this.move(dir); }
      });
      button.addEventListener("keyup", (ev) => { if (ev.key === "Enter" || ev.key === " ") this.stop(); });
    }
    this.box.querySelector("[data-preset=go]").addEventListener("click", () => {
      if (this.select.value) this.send({action: "goto_preset", preset: this.select.value});
    });
    this.box.querySelector("[data-preset=save]").addEventListener("click", () => this.savePreset());
  }

  send(body) {
    this.queue = this.queue.then(() => api("POST", `${this.url}/ptz`, body)).catch((err) => this.say(err.message));
    return this.queue;
  }

  move(dir) {
    this.moving = true;
    this.send({action: "move", pan: 0, tilt: 0, zoom: 0, ...PTZ_MOVES[dir]});
  }

  stop() {
    if (!this.moving) return;  // pointerleave also fires on a plain hover
    this.moving = false;
    this.send({action: "stop"});
  }

  /** Show the pad when the camera can pan/tilt/zoom; capabilities narrow once the device answered. */
  show(capabilities) {
    this.box.hidden = !capabilities.includes("ptz");
    const presets = capabilities.includes("presets");
    this.box.querySelector(".presets").hidden = !presets;
    if (presets && !this.presetsLoaded) {
      this.presetsLoaded = true;
      this.loadPresets();
    }
  }

  async loadPresets(selected) {
    try {
      const presets = await api("GET", `${this.url}/presets`);
      const option = (value, text) => Object.assign(document.createElement("option"), {value, textContent: text});
      this.select.replaceChildren(option("", presets.length ? "Preset…" : "No presets"),
                                  ...presets.map((p) => option(p.token, p.name)));
      if (selected) this.select.value = selected;
    } catch (err) {
      this.say(err.message);
    }
  }

  async savePreset() {
    const name = (prompt("Name of the preset (where the camera points now):") || "").trim();
    if (!name) return;
    try {
      const preset = await api("POST", `${this.url}/presets`, {name});
      await this.loadPresets(preset.token);
      this.say(`Saved "${preset.name}"`);
    } catch (err) {
      this.say(err.message);
    }
  }

  say(text) {
    this.msg.textContent = text;
    clearTimeout(this.sayTimer);
    this.sayTimer = setTimeout(() => { this.msg.textContent = ""; }, 6000);
  }
}

for (const tile of document.querySelectorAll(".tile")) {
  const video = tile.querySelector("video");
  const state = tile.querySelector(".state");
  const player = new LivePlayer(video, Number(tile.dataset.cameraId), (s, detail) => {
    tile.dataset.state = s;
    state.textContent = detail ? `${s} · ${detail}` : s;
  });
  player.start();
  tile.querySelector(".fullscreen").addEventListener("click", () => tile.requestFullscreen());
  if (tile.querySelector(".ptz")) pads.set(Number(tile.dataset.cameraId), new PtzPad(tile));
}

function fmt(seconds) {
  const s = Math.floor(seconds);
  return [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60].map((n) => String(n).padStart(2, "0")).join(":");
}

const rooms = new Map();  // room id -> {recording, fetchedAt} (fetchedAt on performance.now())

/** A room's recording time now: its elapsed_s at the last poll, plus the time since, unless paused. */
function recordingTime(info) {
  const rec = info.recording;
  return rec.elapsed_s + (rec.state === "recording" ? (performance.now() - info.fetchedAt) / 1000 : 0);
}

/** Recording time as m:ss (h:mm:ss past an hour), as a person says it. */
function shortTime(seconds) {
  const s = Math.floor(seconds);
  const mmss = `${Math.floor(s / 60) % 60}:${String(s % 60).padStart(2, "0")}`;
  return s >= 3600 ? `${Math.floor(s / 3600)}:${mmss.padStart(5, "0")}` : mmss;
}

const DEFAULT_MARK = "Marked";
const marks = new Map();  // room id -> MarkBox
let pointerRoom = null;   // the room last pointed at or focused: where M marks when several record

/** A room's Mark button: the time is taken at the press, the text typed after it. */
class MarkBox {
  constructor(section) {
    this.roomId = Number(section.dataset.roomId);
    this.button = section.querySelector("button[data-mark]");
    this.input = section.querySelector(".mark-text");
    this.msg = section.querySelector(".mark-msg");
    this.pending = null;  // {recordingId, time} of a press whose text is being typed
    this.button.addEventListener("click", () => this.mark());
    this.input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); this.save(this.input.value); }
      if (ev.key === "Escape") { ev.preventDefault(); this.save(""); }
    });
    // Clicking away keeps the press too: a marked moment is never lost for want of text.
    this.input.addEventListener("blur", () => this.save(this.input.value));
    for (const kind of ["pointerenter", "focusin"]) section.addEventListener(kind, () => { pointerRoom = this; });
  }

  recording() {
    const info = rooms.get(this.roomId);
    return info && info.recording ? info : null;
  }

  /** Take the recording time now and ask for the text; false when the room does not record. */
  mark() {
    const info = this.recording();
    if (!info) return false;
    const time = recordingTime(info);
    if (this.pending) this.save(this.input.value);
    this.say("");  // the last confirmation is not this press's
    this.pending = {recordingId: info.recording.id, time};
    this.input.value = "";
    this.input.placeholder = `What happened at ${shortTime(time)}?`;
    this.input.hidden = false;
    this.input.focus();
    return true;
  }

  async save(text) {
    const press = this.pending;
    if (!press) return;
    this.pending = null;
    this.input.hidden = true;
    const event = text.trim() || DEFAULT_MARK;
    try {
      await api("POST", `/api/v1/recordings/${press.recordingId}/markers`,
                {event, time_s: Math.round(press.time * 1000) / 1000});
      this.say(`Marked at ${shortTime(press.time)}`);
    } catch (err) {
      this.say(`Not marked: ${err.message}`);
    }
  }

  show() {
    this.button.hidden = !this.recording();
  }

  say(text) {
    this.msg.textContent = text;
    clearTimeout(this.sayTimer);
    if (text) this.sayTimer = setTimeout(() => { this.msg.textContent = ""; }, 5000);
  }
}

for (const section of document.querySelectorAll(".room[data-room-id]")) {
  if (section.querySelector("button[data-mark]")) marks.set(Number(section.dataset.roomId), new MarkBox(section));
}

function typingInto(target) {
  return target instanceof Element &&
    (target.isContentEditable || target.closest("input, textarea, select, [contenteditable]") !== null);
}

document.addEventListener("keydown", (ev) => {
  if ((ev.key !== "m" && ev.key !== "M") || ev.repeat || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (typingInto(ev.target)) return;
  const recording = [...marks.values()].filter((box) => box.recording());
  const box = recording.includes(pointerRoom) ? pointerRoom : recording.length === 1 ? recording[0] : null;
  if (box) {
    ev.preventDefault();  // the M must not land in the text box that opens
    box.mark();
  } else {
    for (const other of recording) other.say("Several rooms record: point at one, or use its Mark button");
  }
});

function render() {
  for (const section of document.querySelectorAll(".room[data-room-id]")) {
    const info = rooms.get(Number(section.dataset.roomId));
    const rec = info && info.recording;
    const state = rec ? rec.state : "idle";
    section.dataset.recording = state;
    const indicator = section.querySelector(".rec-indicator");
    if (indicator) {
      let elapsed = rec ? rec.elapsed_s : 0;
      if (rec && rec.state === "recording") elapsed += (performance.now() - info.fetchedAt) / 1000;
      indicator.textContent = rec ? `${state === "paused" ? "PAUSED" : "REC"} ${fmt(elapsed)}` : "";
    }
    for (const button of section.querySelectorAll("button[data-action]")) {
      const a = button.dataset.action;
      button.hidden = !((a === "start" && !rec) || (a === "pause" && state === "recording") ||
                        (a === "resume" && state === "paused") || (a === "stop" && rec));
    }
    const mark = marks.get(Number(section.dataset.roomId));
    if (mark) mark.show();
  }
}

async function refresh() {
  try {
    const list = await api("GET", "/api/v1/rooms");
    for (const room of list) {
      rooms.set(room.id, {recording: room.recording, fetchedAt: performance.now()});
      for (const cam of room.cameras) {
        const tile = document.querySelector(`.tile[data-camera-id="${cam.id}"]`);
        if (tile) {
          // The reason says what to fix: "offline · wrong credentials", "offline · unreachable".
          const status = tile.querySelector(".status");
          status.textContent = cam.status_reason ? `${cam.status} · ${cam.status_reason}` : cam.status;
          status.title = cam.status_reason || "";
          tile.dataset.status = cam.status;
        }
        if (pads.has(cam.id)) pads.get(cam.id).show(cam.capabilities);
      }
    }
    render();
  } catch (err) {
    console.warn("refresh failed", err);
  }
}

for (const button of document.querySelectorAll("button[data-action]")) {
  button.addEventListener("click", async () => {
    const room = button.closest(".room").dataset.roomId;
    button.disabled = true;
    try {
      await api("POST", `/api/v1/rooms/${room}/record/${button.dataset.action}`);
    } catch (err) {
      alert(err.message);
    } finally {
      button.disabled = false;
      refresh();
    }
  });
}

refresh();
setInterval(refresh, 3000);
setInterval(render, 1000);
