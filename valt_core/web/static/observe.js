// The Observe page: live tiles, camera status, and recording controls per room.
import {LivePlayer} from "./player.js";

const csrf = document.querySelector('meta[name="csrf-token"]').content;

for (const tile of document.querySelectorAll(".tile")) {
  const video = tile.querySelector("video");
  const state = tile.querySelector(".state");
  const player = new LivePlayer(video, Number(tile.dataset.cameraId), (s, detail) => {
    tile.dataset.state = s;
    state.textContent = detail ? `${s} · ${detail}` : s;
  });
  player.start();
  tile.querySelector(".fullscreen").addEventListener("click", () => tile.requestFullscreen());
}

async function api(method, path) {
  const r = await fetch(path, {method, credentials: "same-origin", headers: {"X-CSRF-Token": csrf}});
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || r.statusText);
  return body;
}

function fmt(seconds) {
  const s = Math.floor(seconds);
  return [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60].map((n) => String(n).padStart(2, "0")).join(":");
}

const rooms = new Map();  // room id -> {recording, fetchedAt}

function render() {
  for (const section of document.querySelectorAll(".room[data-room-id]")) {
    const info = rooms.get(Number(section.dataset.roomId));
    const rec = info && info.recording;
    const state = rec ? rec.state : "idle";
    section.dataset.recording = state;
    const indicator = section.querySelector(".rec-indicator");
    if (indicator) {
      let elapsed = rec ? rec.elapsed_s : 0;
      if (rec && rec.state === "recording") elapsed += (Date.now() - info.fetchedAt) / 1000;
      indicator.textContent = rec ? `${state === "paused" ? "PAUSED" : "REC"} ${fmt(elapsed)}` : "";
    }
    for (const button of section.querySelectorAll("button[data-action]")) {
      const a = button.dataset.action;
      button.hidden = !((a === "start" && !rec) || (a === "pause" && state === "recording") ||
                        (a === "resume" && state === "paused") || (a === "stop" && rec));
    }
  }
}

async function refresh() {
  try {
    const list = await api("GET", "/api/v1/rooms");
    for (const room of list) {
      rooms.set(room.id, {recording: room.recording, fetchedAt: Date.now()});
      for (const cam of room.cameras) {
        const tile = document.querySelector(`.tile[data-camera-id="${cam.id}"]`);
        if (tile) tile.querySelector(".status").textContent = cam.status;
        if (tile) tile.dataset.status = cam.status;
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
