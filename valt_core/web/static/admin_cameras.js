// Admin > Cameras: list, find, test, add, edit and remove cameras through the cameras API.
// The add/edit form is built from the chosen driver's `config_schema` (its pydantic JSON
// schema), so a new driver plugin gets a form without any change here.
// Text from the API and from devices is always set with textContent, never as HTML.

import {api} from "./api.js";
import {busy, el, showMessage} from "./dom.js";

const MASK = "********";  // how the API shows a stored secret; sent back, it keeps the secret

const table = document.querySelector(".camera-table tbody");
const form = document.getElementById("camera-form");
const found = document.getElementById("found");
const pageError = document.getElementById("page-error");

// driver -> its settings in the author's order (the API's JSON comes with keys sorted).
const fieldOrder = JSON.parse(document.getElementById("field-order").textContent);
const drivers = new Map();  // name -> {capabilities, secret_fields, config_schema, description}
let rooms = [];
let cameras = [];
const tested = new Map();   // camera id -> {ok, result | message}; kept across list refreshes
let editing = null;         // the camera being edited, or null when adding


function showPageError(message) {
  showMessage(pageError, message);
}

// --- what a test answers --------------------------------------------------------------

/** Identity, streams and warnings of a probe/test answer, as a few lines. */
function describe(result) {
  const id = result.identity;
  const lines = [el("div", {className: "identity"},
    el("strong", {}, [id.manufacturer, id.model].filter(Boolean).join(" ") || "Unknown device"),
    [id.firmware && ` · firmware ${id.firmware}`, id.serial && ` · serial ${id.serial}`].filter(Boolean).join(""))];
  for (const s of result.streams) {
    const size = s.width && s.height ? ` ${s.width}×${s.height}` : "";
    lines.push(el("div", {className: "stream"},
      `${s.name}: ${s.codec || "?"}${size}${s.fps ? ` ${s.fps} fps` : ""}${s.audio_codec ? ` + ${s.audio_codec}` : ""}`));
  }
  for (const w of id.warnings) lines.push(el("div", {className: "warning"}, `⚠ ${w}`));
  return lines;
}

function showResult(box, outcome) {
  box.hidden = false;
  box.className = `result ${outcome.ok ? "ok" : "bad"}`;
  box.replaceChildren(...(outcome.ok ? describe(outcome.result) : [outcome.message]));
}

// --- the list -------------------------------------------------------------------------

function badges(names) {
  return el("span", {className: "badges"}, ...names.map((n) => el("span", {className: "badge"}, n)));
}

function renderList() {
  const roomName = new Map(rooms.map((r) => [r.id, r.name]));
  const rows = [];
  for (const cam of cameras) {
    const test = el("button", {type: "button", textContent: "Test connection"});
    const edit = el("button", {type: "button", textContent: "Edit"});
    const remove = el("button", {type: "button", className: "danger", textContent: "Remove"});
    const status = cam.enabled ? cam.status : "disabled";
    const row = el("tr", {className: "camera-row"},
      el("td", {className: "name"}, cam.name),
      el("td", {className: "room"}, cam.room_id == null ? "—" : roomName.get(cam.room_id) || `#${cam.room_id}`),
      el("td", {className: "driver"}, cam.driver),
      el("td", {className: `status status-${status}`}, status),
      el("td", {}, badges(cam.capabilities)),
      el("td", {className: "actions"}, test, edit, remove));
    row.dataset.cameraId = cam.id;
    rows.push(row);
    const result = el("div", {className: "result", hidden: true});
    if (tested.has(cam.id)) showResult(result, tested.get(cam.id));
    rows.push(el("tr", {className: "detail"}, el("td", {colSpan: 6}, result)));

    test.addEventListener("click", () => busy(test, "Testing…", async () => {
      try {
        tested.set(cam.id, {ok: true, result: await api("POST", `/api/v1/cameras/${cam.id}/test`)});
      } catch (err) {
        tested.set(cam.id, {ok: false, message: err.message});
      }
      await loadCameras();  // a test can narrow the capabilities (e.g. an ONVIF camera without PTZ)
    }));
    edit.addEventListener("click", () => openForm({camera: cam}));
    remove.addEventListener("click", () => {
      if (!confirm(`Remove the camera "${cam.name}"? Its past recordings stay.`)) return;
      busy(remove, "Removing…", async () => {
        try {
          await api("DELETE", `/api/v1/cameras/${cam.id}`);
          tested.delete(cam.id);
          showPageError("");
        } catch (err) {
          showPageError(err.message);
        }
        await loadCameras();
      });
    });
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", {colSpan: 6, className: "empty"}, "No cameras yet.")));
  table.replaceChildren(...rows);
}

async function loadCameras() {
  try {
    cameras = await api("GET", "/api/v1/cameras");
    renderList();
    renderFound();
  } catch (err) {
    showPageError(err.message);
  }
}

// --- finding cameras ------------------------------------------------------------------

let discovered = null;  // the last discovery answer, redrawn as cameras are added

async function findCameras(button) {
  found.hidden = false;
  const searching = found.querySelector(".searching");
  searching.hidden = false;
  found.querySelector(".found-list").replaceChildren();
  await busy(button, "Searching…", async () => {
    try {
      discovered = await api("POST", "/api/v1/cameras/discover", {});
      renderFound();
    } catch (err) {
      discovered = null;
      found.querySelector(".found-list").replaceChildren(el("li", {className: "error"}, err.message));
    } finally {
      searching.hidden = true;
    }
  });
}

function renderFound() {
  if (!discovered) return;
  const items = discovered.found.map((f) => {
    const host = f.config.host || f.address;
    const port = f.config.port || f.config.http_port;
    // WS-Discovery often tells the model but not the maker; show what the device told.
    const item = el("li", {className: "found-item"},
      el("span", {className: "name"}, f.name || "Camera"),
      el("span", {className: "model"}, [f.manufacturer, f.model].filter(Boolean).join(" ")),
      el("span", {className: "address"}, port ? `${host}:${port}` : host),
      el("span", {className: "driver"}, f.driver));
    // Added since the search, too: the API matches a device to a camera by driver and host.
    const added = cameras.some((c) => c.id === f.camera_id || (c.driver === f.driver && c.config.host === host));
    if (added) {
      item.append(el("span", {className: "added"}, "added"));
    } else {
      const add = el("button", {type: "button", textContent: "Add"});
      add.addEventListener("click", () => openForm({driver: f.driver, config: f.config, name: f.name || f.model || ""}));
      item.append(add);
    }
    return item;
  });
  found.querySelector(".found-list").replaceChildren(...(items.length ? items
    : [el("li", {className: "empty"}, `No cameras answered within ${discovered.took_s} s.`)]));
}

// --- the add/edit form ----------------------------------------------------------------

/** The JSON type of a schema property; `int | None` comes as anyOf [{type: integer}, {type: null}]. */
function typeOf(prop) {
  if (prop.type) return prop.type;
  const first = (prop.anyOf || []).find((p) => p.type && p.type !== "null");
  return first ? first.type : "string";
}

function configField(name, prop, required, secret, value) {
  const type = typeOf(prop);
  let input;
  if (prop.enum) {
    input = el("select", {}, ...prop.enum.map((v) => el("option", {value: v, textContent: v})));
  } else if (type === "boolean") {
    input = el("input", {type: "checkbox"});
    input.checked = Boolean(value);
  } else if (type === "integer" || type === "number") {
    input = el("input", {type: "number", step: type === "integer" ? "1" : "any"});
    const min = prop.minimum ?? prop.exclusiveMinimum;
    const max = prop.maximum ?? prop.exclusiveMaximum;
    if (min !== undefined) input.min = min;
    if (max !== undefined) input.max = max;
  } else {
    // new-password: the browser must not fill in the signed-in admin's own password here.
    input = el("input", {type: secret ? "password" : "text", autocomplete: secret ? "new-password" : "off"});
  }
  if (type !== "boolean") input.value = value ?? "";
  input.name = `config.${name}`;
  input.dataset.type = type;
  input.required = required;
  const label = el("span", {className: `label${required ? " required" : ""}`}, prop.title || name);
  const parts = type === "boolean" ? [el("span", {className: "check"}, input, label)] : [label, input];
  const error = el("span", {className: "field-error"});
  error.dataset.field = input.name;  // where the API's details.fields["config.<name>"] goes
  return el("label", {className: "field"}, ...parts,
    prop.description ? el("span", {className: "help"}, prop.description) : null, error);
}

function buildConfigFields(driverName, values) {
  const driver = drivers.get(driverName);
  const box = form.querySelector(".config-fields");
  form.querySelector(".driver-help").textContent = driver ? driver.description : "";
  if (!driver) return box.replaceChildren();
  const schema = driver.config_schema;
  const required = new Set(schema.required || []);
  const secrets = new Set(driver.secret_fields);
  const props = schema.properties || {};
  const names = new Set([...(fieldOrder[driverName] || []), ...Object.keys(props)]);
  box.replaceChildren(...[...names].filter((name) => name in props).map((name) =>
    configField(name, props[name], required.has(name), secrets.has(name),
                name in values ? values[name] : props[name].default)));
}

/** The form as an API body. Empty inputs are left out, so the driver's defaults apply. */
function formValues() {
  const config = {};
  for (const input of form.querySelectorAll("[name^='config.']")) {
    const key = input.name.slice("config.".length);
    if (input.dataset.type === "boolean") config[key] = input.checked;
    else if (input.value === "") continue;
    else if (input.dataset.type === "integer" || input.dataset.type === "number") config[key] = Number(input.value);
    else config[key] = input.value;
  }
  const room = form.elements.room_id.value;
  return {name: form.elements.name.value.trim(), driver: form.elements.driver.value,
          room_id: room === "" ? null : Number(room), config};
}

function showFieldErrors(fields) {
  for (const span of form.querySelectorAll(".field-error")) span.textContent = fields[span.dataset.field] || "";
}

/** Show an API error: field problems next to their fields, the rest (or a pointer to them) in `box`. */
function showError(box, err) {
  const fields = err.fields || {};
  showFieldErrors(fields);
  const placed = new Set([...form.querySelectorAll(".field-error")].map((span) => span.dataset.field));
  const elsewhere = Object.entries(fields).filter(([key]) => !placed.has(key)).map(([key, msg]) => `${key}: ${msg}`);
  const message = elsewhere.length ? elsewhere.join("; ")
    : Object.keys(fields).length ? "Please correct the fields marked in red." : err.message;
  showResult(box, {ok: false, message});
}

function openForm({camera = null, driver = null, config = {}, name = ""}) {
  editing = camera;
  form.hidden = false;
  form.querySelector(".form-title").textContent = camera ? `Edit ${camera.name}` : "Add camera";
  form.elements.name.value = camera ? camera.name : name;
  const select = form.elements.driver;
  select.value = camera ? camera.driver : driver || select.value;
  select.disabled = Boolean(camera);  // the API keeps a camera's driver; remove and re-add to change it
  form.elements.room_id.value = camera && camera.room_id != null ? String(camera.room_id) : "";
  buildConfigFields(select.value, camera ? camera.config : config);
  showFieldErrors({});
  form.querySelector(".result").hidden = true;
  form.scrollIntoView({block: "nearest"});
  form.elements.name.focus();
}

async function testForm(button) {
  const box = form.querySelector(".result");
  const values = formValues();
  await busy(button, "Testing…", async () => {
    try {
      let result;
      const masked = Object.values(values.config).includes(MASK);
      if (editing && masked) {
        // The form holds only the mask, not the stored secret: test the saved settings, and
        // only if nothing else changed, or the answer would be about different settings.
        const same = Object.entries(values.config).every(([k, v]) => v === MASK || editing.config[k] === v);
        if (!same) throw new Error("Type the password again to test changed settings.");
        result = await api("POST", `/api/v1/cameras/${editing.id}/test`);
      } else {
        result = await api("POST", "/api/v1/cameras/probe", {driver: values.driver, config: values.config});
      }
      showFieldErrors({});
      showResult(box, {ok: true, result});
    } catch (err) {
      showError(box, err);
    }
  });
}

async function saveForm(button) {
  const box = form.querySelector(".result");
  const values = formValues();
  await busy(button, "Saving…", async () => {
    try {
      if (editing) {
        await api("PATCH", `/api/v1/cameras/${editing.id}`,
                  {name: values.name, room_id: values.room_id, config: values.config});
      } else {
        await api("POST", "/api/v1/cameras", values);
      }
      form.hidden = true;
      editing = null;
      await loadCameras();
    } catch (err) {
      showError(box, err);
    }
  });
}

// --- start ----------------------------------------------------------------------------

async function start() {
  try {
    const [driverList, roomList] = await Promise.all([api("GET", "/api/v1/camera-drivers"),
                                                      api("GET", "/api/v1/rooms")]);
    for (const d of driverList) drivers.set(d.name, d);
    rooms = roomList;
  } catch (err) {
    showPageError(err.message);
    return;
  }
  form.elements.driver.replaceChildren(...[...drivers.keys()].map((n) => el("option", {value: n, textContent: n})));
  form.elements.room_id.append(...rooms.map((r) => el("option", {value: String(r.id), textContent: r.name})));
  form.elements.driver.addEventListener("change", () => buildConfigFields(form.elements.driver.value, {}));
  form.querySelector("[data-form=test]").addEventListener("click", (ev) => testForm(ev.currentTarget));
  form.querySelector("[data-form=cancel]").addEventListener("click", () => { form.hidden = true; editing = null; });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    saveForm(form.querySelector("button[type=submit]"));
  });
  document.getElementById("add-camera").addEventListener("click", () => openForm({}));
  document.getElementById("find-cameras").addEventListener("click", (ev) => findCameras(ev.currentTarget));
  await loadCameras();
  setInterval(loadCameras, 5000);  // statuses change as cameras come and go
}

start();
