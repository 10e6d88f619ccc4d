// Admin > Media servers: each server's state and load, refreshed every few seconds; enrolment
// (the nkey seed shown once); live mode; moving a camera or a whole room to another server.
// Everything goes through the API. Text from the API is always set with textContent.

import {api} from "./api.js";
import {el, showMessage} from "./dom.js";

const REFRESH_MS = 3000;

const page = JSON.parse(document.getElementById("page-data").textContent);
const table = document.querySelector(".server-table tbody");
const pageError = document.getElementById("page-error");
const enrolForm = document.getElementById("enrol-form");
const seedCard = document.getElementById("seed-card");
const roomForm = document.getElementById("room-move");

let servers = [];
let cameras = [];
let rooms = [];
const expanded = new Set();    // keys of the servers whose cameras are listed
const chosen = new Map();      // camera id -> the server picked in its select, kept across refreshes
let busy = 0;                  // requests of the user in flight: no redraw under their feet


function showPageError(message) {
  showMessage(pageError, message);
}

function showResult(box, ok, message) {
  box.hidden = false;
  box.className = `result ${ok ? "ok" : "bad"}`;
  box.textContent = message;
}

/** Run `work` with `button` disabled, and no refresh redrawing the page meanwhile. */
async function withButton(button, label, work) {
  const text = button.textContent;
  button.disabled = true;
  button.textContent = label;
  busy += 1;
  try {
    await work();
  } finally {
    busy -= 1;
    button.disabled = false;
    button.textContent = text;
  }
}

// --- how values are shown ------------------------------------------------------------

const keyOf = (server) => (server.id == null ? "embedded" : String(server.id));
const dash = "—";

function mbps(kbps) {
  return kbps == null ? dash : `${(kbps / 1000).toFixed(kbps >= 10000 ? 1 : 2)} Mb/s`;
}

function gigabytes(bytes) {
  return bytes == null ? dash : `${(bytes / 1e9).toFixed(1)} GB`;
}

function localTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "never";
}

/** The label of a move target: a server's name, or what `null` means on this site. */
function targetLabel(id) {
  if (id != null) {
    const server = servers.find((s) => s.id === id);
    return server ? server.name : `#${id}`;
  }
  const embedded = servers.find((s) => s.embedded);
  return embedded ? `${embedded.name} (this app server)` : "automatic (least loaded)";
}

/** <option>s for every place a camera can go; `value` "" is null (embedded or automatic). */
function targetOptions(current) {
  const ids = [null, ...servers.filter((s) => !s.embedded).map((s) => s.id)];
  return ids.map((id) => {
    const server = servers.find((s) => s.id === id && !s.embedded);
    const away = server && server.status !== "online" ? ` (${server.status})` : "";
    const option = el("option", {value: id == null ? "" : String(id), textContent: targetLabel(id) + away});
    option.selected = id === current;
    return option;
  });
}

const targetValue = (select) => (select.value === "" ? null : Number(select.value));

// --- the table -------------------------------------------------------------------------

function stateCell(server) {
  const seen = server.status === "online" && server.embedded ? "running in this process"
    : `last seen ${localTime(server.last_seen_at)}`;
  return el("td", {className: "state"},
    el("span", {className: `status status-${server.status}`}, server.status),
    el("span", {className: "seen"}, seen));
}

function liveModeCell(server) {
  if (server.embedded) return el("td", {className: "live-mode"}, "in process");
  if (!page.can_manage_servers) return el("td", {className: "live-mode"}, server.live_mode);
  const select = el("select", {name: "live_mode"},
    ...["relayed", "direct"].map((m) => el("option", {value: m, textContent: m})));
  select.value = server.live_mode;
  select.setAttribute("aria-label", `Live view of ${server.name}`);
  select.addEventListener("change", async () => {
    busy += 1;
    select.disabled = true;
    try {
      await api("PATCH", `/api/v1/media-servers/${server.id}`, {live_mode: select.value});
      showPageError("");
    } catch (err) {
      showPageError(err.message);
    } finally {
      busy -= 1;
      await refresh();
    }
  });
  return el("td", {className: "live-mode"}, select);
}

function cameraList(server) {
  const roomName = new Map(rooms.map((r) => [r.id, r.name]));
  const ids = new Set(server.cameras);
  const mine = cameras.filter((c) => ids.has(c.id));
  if (!mine.length) return el("p", {className: "empty"}, "No cameras.");
  return el("ul", {className: "server-cameras"}, ...mine.map((cam) => {
    const status = cam.enabled ? cam.status : "disabled";
    const item = el("li", {className: "server-camera"},
      el("span", {className: "name"}, cam.name),
      el("span", {className: "room"}, cam.room_id == null ? "not in a room" : roomName.get(cam.room_id) || `#${cam.room_id}`),
      el("span", {className: `status status-${status}`}, status));
    item.dataset.cameraId = cam.id;
    if (page.can_move_cameras) {
      const select = el("select", {name: "move_to"}, ...targetOptions(cam.media_server_id));
      select.setAttribute("aria-label", `Move ${cam.name} to`);
      if (chosen.has(cam.id)) select.value = chosen.get(cam.id);
      const move = el("button", {type: "button", className: "move", textContent: "Move"});
      const sync = () => { move.disabled = targetValue(select) === cam.media_server_id; };
      select.addEventListener("change", () => { chosen.set(cam.id, select.value); sync(); });
      move.addEventListener("click", () => withButton(move, "Moving…", async () => {
        try {
          await api("PATCH", `/api/v1/cameras/${cam.id}`, {media_server_id: targetValue(select)});
          chosen.delete(cam.id);
          showPageError("");
        } catch (err) {
          showPageError(`${cam.name}: ${err.message}`);
        }
        await refresh();
      }));
      sync();
      item.append(el("span", {className: "move-to"}, select, move));
    }
    return item;
  }));
}

function render() {
  const rows = [];
  for (const server of servers) {
    const key = keyOf(server);
    const open = expanded.has(key);
    const toggle = el("button", {type: "button", className: "toggle",
                                 textContent: `${server.cameras.length} ${open ? "▾" : "▸"}`});
    toggle.setAttribute("aria-expanded", String(open));
    toggle.setAttribute("aria-label", `Cameras of ${server.name}`);
    toggle.addEventListener("click", () => {
      if (expanded.has(key)) expanded.delete(key); else expanded.add(key);
      render();
    });
    const name = el("td", {className: "name"}, server.name);
    if (server.embedded) name.append(el("span", {className: "badge"}, "embedded"));
    const row = el("tr", {className: "server-row"},
      name, stateCell(server),
      el("td", {className: "version"}, server.version || dash),
      el("td", {className: "pool"}, server.pool || "default"),
      liveModeCell(server),
      el("td", {className: "cameras"}, toggle),
      el("td", {className: "num cpu"}, server.cpu_percent == null ? dash : `${server.cpu_percent.toFixed(1)} %`),
      el("td", {className: "num ingest"}, mbps(server.ingest_kbps)),
      el("td", {className: "num free"}, gigabytes(server.free_bytes)),
      el("td", {className: "num events"}, server.events_waiting == null ? dash : String(server.events_waiting)));
    row.dataset.server = server.name;
    rows.push(row);
    if (open) {
      const detail = el("tr", {className: "server-detail"}, el("td", {colSpan: 10}, cameraList(server)));
      detail.dataset.server = server.name;
      rows.push(detail);
    }
  }
  if (!rows.length) {
    rows.push(el("tr", {}, el("td", {colSpan: 10, className: "empty"},
      "No media servers yet: enrol one, then start it with valt media-server --name NAME.")));
  }
  table.replaceChildren(...rows);
  renderRoomMove();
}

function renderRoomMove() {
  if (!roomForm) return;
  const roomSelect = roomForm.elements.room_id;
  const targetSelect = roomForm.elements.media_server_id;
  const [room, target] = [roomSelect.value, targetSelect.value];
  roomSelect.replaceChildren(...rooms.map((r) => el("option", {value: String(r.id), textContent: r.name})));
  targetSelect.replaceChildren(...targetOptions(undefined));
  keep(roomSelect, room);
  keep(targetSelect, target);
}

/** Choose `value` again after the options were rebuilt, if it is still one of them. */
function keep(select, value) {
  if ([...select.options].some((o) => o.value === value)) select.value = value;
}

/** The user is choosing in a select: a redraw now would close it under their pointer. */
function choosing() {
  const active = document.activeElement;
  return active && active.tagName === "SELECT" && (table.contains(active) || (roomForm && roomForm.contains(active)));
}

async function refresh() {
  try {
    [servers, cameras, rooms] = await Promise.all([
      api("GET", "/api/v1/media-servers"), api("GET", "/api/v1/cameras"), api("GET", "/api/v1/rooms")]);
  } catch (err) {
    showPageError(err.message);
    return;
  }
  if (busy === 0 && !choosing()) render();
}

// --- enrolment ---------------------------------------------------------------------------

function showFieldErrors(fields) {
  for (const span of enrolForm.querySelectorAll(".field-error")) span.textContent = fields[span.dataset.field] || "";
}

/** The shell and TOML a site runs on the new server's host, with this server's names in. */
function fillSteps(server, seed) {
  const seedFile = `/etc/valt/${server.name}.nkey`;
  const natsUrl = page.bus_url || "nats://APP-SERVER:4222";
  seedCard.querySelector(".seed-name").textContent = server.name;
  seedCard.querySelector(".seed").value = seed;
  seedCard.querySelector(".copied").textContent = "";
  seedCard.querySelector(".step-save").textContent = `(umask 077; cat > ${seedFile})`;
  seedCard.querySelector(".step-config").textContent =
    `[bus]\nurl = "${natsUrl}"\nnkey_seed_file = "${seedFile}"`;
  seedCard.querySelector(".step-nats").textContent =
    `valt nats-config --app-seed-file ${page.app_seed_file || "/etc/valt/app.nkey"}`;
  const pool = server.pool ? ` --pool ${server.pool}` : "";
  seedCard.querySelector(".step-run").textContent = `valt --config valt.toml media-server --name ${server.name}${pool}`;
}

async function enrol(button) {
  const box = enrolForm.querySelector(".result");
  const body = {name: enrolForm.elements.name.value.trim(), pool: enrolForm.elements.pool.value.trim(),
                live_mode: enrolForm.elements.live_mode.value};
  await withButton(button, "Enrolling…", async () => {
    try {
      const server = await api("POST", "/api/v1/media-servers", body);
      enrolForm.hidden = true;
      enrolForm.reset();
      box.hidden = true;
      showFieldErrors({});
      fillSteps(server, server.nkey_seed);
      seedCard.hidden = false;
      seedCard.scrollIntoView({block: "nearest"});
    } catch (err) {
      const fields = err.fields || {};
      showFieldErrors(fields);
      showResult(box, false, Object.keys(fields).length ? "Please correct the fields marked in red." : err.message);
    }
  });
  await refresh();
}

async function copySeed() {
  const input = seedCard.querySelector(".seed");
  const status = seedCard.querySelector(".copied");
  try {
    await navigator.clipboard.writeText(input.value);
    status.textContent = "Copied.";
  } catch {
    // No clipboard outside a secure context (plain http to another host): copy by hand.
    input.focus();
    input.select();
    status.textContent = "Selected: press Ctrl+C to copy.";
  }
}

function forgetSeed() {
  // The seed lives only in this box; closing it is the last time anyone sees it.
  seedCard.querySelector(".seed").value = "";
  seedCard.hidden = true;
}

// --- moving a room ---------------------------------------------------------------------

async function moveRoom(button) {
  const box = roomForm.querySelector(".result");
  const roomId = Number(roomForm.elements.room_id.value);
  const target = targetValue(roomForm.elements.media_server_id);
  await withButton(button, "Moving…", async () => {
    try {
      const room = await api("PATCH", `/api/v1/rooms/${roomId}`, {media_server_id: target});
      const n = room.cameras.length;
      showResult(box, true, `${room.name}: ${n} camera${n === 1 ? "" : "s"} now on ${targetLabel(target)}.`);
    } catch (err) {
      showResult(box, false, err.message);
    }
  });
  await refresh();
}

// --- start -----------------------------------------------------------------------------

function start() {
  const enrolButton = document.getElementById("enrol-server");
  if (enrolButton) {
    enrolButton.addEventListener("click", () => {
      enrolForm.hidden = false;
      enrolForm.elements.name.focus();
    });
    enrolForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      enrol(enrolForm.querySelector("button[type=submit]"));
    });
    enrolForm.querySelector("[data-form=cancel]").addEventListener("click", () => { enrolForm.hidden = true; });
    seedCard.querySelector(".copy-seed").addEventListener("click", copySeed);
    seedCard.querySelector(".seed-done").addEventListener("click", forgetSeed);
  }
  if (roomForm) {
    roomForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      moveRoom(roomForm.querySelector("button[type=submit]"));
    });
  }
  refresh();
  setInterval(refresh, REFRESH_MS);  // states, load and assignments change without the page
}

start();
