// Admin > Groups: the groups; for the one selected, its name and description, members, a rights
// matrix (every room, or some rooms for the rights rooms can limit) and video access. Changes
// stay in the page until Save, which sends the group's whole lists (PATCH replaces them), so
// what the page shows is what is stored. Everything goes through the API, which checks and
// audits it. Text from the API is always set with textContent, never as HTML.

import {api} from "./api.js";
import {busy, el, showMessage} from "./dom.js";

const page = JSON.parse(document.getElementById("page-data").textContent);
const list = document.querySelector(".group-list ul");
const form = document.getElementById("group-form");
const pageError = document.getElementById("page-error");
const matrix = form.querySelector(".rights-matrix tbody");
const videoChoices = form.querySelector(".video-choices");
const memberList = form.querySelector(".member-list");
const memberSelect = form.elements.add_member;
const resultBox = form.querySelector(".result");

let catalog = [];  // GET /rights: {name, description, rooms}
let groups = [];
let users = [];
let rooms = [];
let draft = null;  // the group being edited (see draftOf), or null when none is selected
let dirty = false;

// --- the draft: a group as the form edits it --------------------------------------------

/** A group's lists as sets the checkboxes change; `id` null for a group not saved yet. */
function draftOf(group) {
  const rights = new Map(catalog.map((r) => [r.name, {all: false, rooms: new Set()}]));
  for (const grant of group.rights) {
    const entry = rights.get(grant.right) || {all: false, rooms: new Set()};
    if (grant.room_id == null) entry.all = true; else entry.rooms.add(grant.room_id);
    rights.set(grant.right, entry);
  }
  for (const entry of rights.values()) if (entry.all) entry.rooms.clear();  // every room covers them
  const video = {all: false, users: new Set(), groups: new Set()};
  for (const v of group.video_access) {
    if (v.author_id != null) video.users.add(v.author_id);
    else if (v.author_group_id != null) video.groups.add(v.author_group_id);
    else video.all = true;
  }
  if (video.all) {
    video.users.clear();
    video.groups.clear();
  }
  return {id: group.id ?? null, name: group.name, description: group.description, builtin: group.builtin,
          members: new Set(group.members), rights, video};
}

const NEW_GROUP = {name: "", description: "", builtin: "", members: [], rights: [], video_access: []};

/** The body Save sends: every list whole; what a built-in group cannot change is left out. */
function bodyOf(d) {
  const body = {members: [...d.members].sort((a, b) => a - b)};
  if (!d.builtin) {
    body.name = form.elements.name.value.trim();
    body.description = form.elements.description.value.trim();
  }
  if (d.builtin !== "admin") {
    body.rights = [];
    for (const [right, entry] of d.rights) {
      if (entry.all) body.rights.push({right, room_id: null});
      else for (const room of [...entry.rooms].sort((a, b) => a - b)) body.rights.push({right, room_id: room});
    }
  }
  body.video_access = d.video.all ? [{author_id: null, author_group_id: null}] : [
    ...[...d.video.users].sort((a, b) => a - b).map((id) => ({author_id: id, author_group_id: null})),
    ...[...d.video.groups].sort((a, b) => a - b).map((id) => ({author_id: null, author_group_id: id}))];
  return body;
}

function touched() {
  dirty = true;
  form.querySelector(".dirty").textContent = "Unsaved changes";
  showResult(false, "");
}

// --- how things are named --------------------------------------------------------------

function personName(user) {
  const name = user.display_name ? `${user.display_name} (${user.username})` : user.username;
  return user.disabled ? `${name}, disabled` : name;
}

function userName(id) {
  const user = users.find((u) => u.id === id);
  return user ? personName(user) : `user ${id}`;
}

/** The rooms the matrix offers: those this admin sees, and any the group's grants name besides. */
function roomChoices() {
  const out = rooms.map((r) => ({id: r.id, name: r.name}));
  const known = new Set(out.map((r) => r.id));
  for (const entry of draft.rights.values()) {
    for (const id of entry.rooms) if (!known.has(id)) { out.push({id, name: `room ${id}`}); known.add(id); }
  }
  return out;
}

function showResult(ok, message) {
  resultBox.hidden = !message;
  resultBox.className = `result ${ok ? "ok" : "bad"}`;
  resultBox.textContent = message || "";
}

function showFieldErrors(fields) {
  for (const span of form.querySelectorAll(".field-error")) span.textContent = fields[span.dataset.field] || "";
}

function checkbox(label, checked, disabled, onChange) {
  const box = el("input", {type: "checkbox", checked, disabled});
  box.addEventListener("change", () => onChange(box.checked));
  return el("label", {className: "check"}, box, label);
}

// --- the list of groups ----------------------------------------------------------------

function renderList() {
  const items = groups.map((g) => {
    const button = el("button", {type: "button", className: "pick"},
      el("span", {className: "name"}, g.name),
      g.builtin ? el("span", {className: "badge"}, "built in") : null,
      el("span", {className: "count"}, `${g.members.length} member${g.members.length === 1 ? "" : "s"}`));
    if (draft && draft.id === g.id) button.setAttribute("aria-current", "true");
    button.addEventListener("click", () => select(g.id));
    const item = el("li", {}, button);
    item.dataset.group = g.name;
    return item;
  });
  if (draft && draft.id == null) {
    const item = el("li", {}, el("button", {type: "button", className: "pick"}, el("span", {className: "name"}, "New group")));
    item.firstChild.setAttribute("aria-current", "true");
    items.push(item);
  }
  if (!items.length) items.push(el("li", {className: "empty"}, "No groups."));
  list.replaceChildren(...items);
}

// --- the form --------------------------------------------------------------------------

function renderMembers() {
  const items = [...draft.members].map((id) => {
    const remove = el("button", {type: "button", className: "remove", textContent: "Remove"});
    remove.setAttribute("aria-label", `Remove ${userName(id)}`);
    if (draft.builtin === "admin" && id === page.me) {
      remove.disabled = true;
      remove.title = "Nobody can take themselves out of the Administrators.";
    }
    remove.addEventListener("click", () => {
      draft.members.delete(id);
      touched();
      renderMembers();
    });
    const item = el("li", {className: "member"}, el("span", {className: "name"}, userName(id)), remove);
    item.dataset.userId = id;
    return item;
  });
  if (!items.length) items.push(el("li", {className: "empty"}, "No members."));
  memberList.replaceChildren(...items);
  const others = users.filter((u) => !draft.members.has(u.id));
  memberSelect.replaceChildren(...others.map((u) => el("option", {value: String(u.id), textContent: personName(u)})));
  memberSelect.disabled = !others.length;
  form.querySelector(".add-member .add").disabled = !others.length;
}

function renderMatrix() {
  const readOnly = draft.builtin === "admin";
  const choices = roomChoices();
  matrix.replaceChildren(...catalog.map((right) => {
    const entry = draft.rights.get(right.name);
    const all = checkbox("every room", entry.all, readOnly, (on) => {
      entry.all = on;
      if (on) entry.rooms.clear();  // every room covers them: what is shown is what is saved
      touched();
      renderMatrix();
    });
    all.querySelector("input").setAttribute("aria-label", `${right.name} in every room`);
    let limits;
    if (!right.rooms) {
      limits = el("span", {className: "help"}, "rooms cannot limit it");
    } else if (!choices.length) {
      limits = el("span", {className: "help"}, "no rooms yet");
    } else {
      limits = el("span", {className: "room-choices"}, ...choices.map((room) => {
        const box = checkbox(room.name, entry.rooms.has(room.id), readOnly || entry.all, (on) => {
          if (on) entry.rooms.add(room.id); else entry.rooms.delete(room.id);
          touched();
        });
        box.querySelector("input").setAttribute("aria-label", `${right.name} in ${room.name}`);
        box.dataset.roomId = room.id;
        return box;
      }));
    }
    const row = el("tr", {},
      el("td", {className: "right"}, el("code", {}, right.name)),
      el("td", {className: "description"}, right.description),
      el("td", {className: "all"}, all),
      el("td", {className: "rooms"}, limits));
    row.dataset.right = right.name;
    return row;
  }));
}

function renderVideo() {
  const v = draft.video;
  const every = checkbox("Every author", v.all, false, (on) => {
    v.all = on;
    if (on) {
      v.users.clear();
      v.groups.clear();
    }
    touched();
    renderVideo();
  });
  every.dataset.kind = "all";
  const people = users.map((u) => {
    const box = checkbox(personName(u), v.users.has(u.id), v.all, (on) => {
      if (on) v.users.add(u.id); else v.users.delete(u.id);
      touched();
    });
    box.dataset.authorId = u.id;
    return box;
  });
  const teams = groups.map((g) => {
    const box = checkbox(`members of ${g.name}`, v.groups.has(g.id), v.all, (on) => {
      if (on) v.groups.add(g.id); else v.groups.delete(g.id);
      touched();
    });
    box.dataset.authorGroupId = g.id;
    return box;
  });
  videoChoices.replaceChildren(
    el("div", {className: "choice-row"}, every),
    el("div", {className: "choice-group"}, el("span", {className: "label"}, "Authors"), ...people),
    el("div", {className: "choice-group"}, el("span", {className: "label"}, "Authors in a group"),
       ...(teams.length ? teams : [el("span", {className: "help"}, "No groups.")])));
}

function renderForm() {
  form.hidden = draft == null;
  if (!draft) return;
  const builtin = Boolean(draft.builtin);
  form.querySelector(".form-title").textContent = draft.id == null ? "New group" : draft.name;
  form.elements.name.value = draft.name;
  form.elements.description.value = draft.description;
  form.elements.name.readOnly = builtin;
  form.elements.description.readOnly = builtin;
  form.querySelector(".builtin-note").hidden = !builtin;
  form.querySelector(".admin-note").hidden = draft.builtin !== "admin";
  form.querySelector(".matrix-help").hidden = draft.builtin === "admin";
  form.querySelector(".rights").classList.toggle("read-only", draft.builtin === "admin");
  form.querySelector(".delete").hidden = builtin || draft.id == null;
  form.querySelector(".save").textContent = draft.id == null ? "Create group" : "Save";
  form.querySelector(".dirty").textContent = dirty ? "Unsaved changes" : "";
  renderMembers();
  renderMatrix();
  renderVideo();
}

/** Edit group `id` (or a new one when "new"), asking first if that would drop unsaved changes. */
function select(id) {
  if (dirty && !window.confirm(`Discard the unsaved changes to ${draft.name || "the new group"}?`)) return;
  const group = id === "new" ? NEW_GROUP : groups.find((g) => g.id === id);
  draft = group ? draftOf(group) : null;
  dirty = false;
  showResult(true, "");
  showFieldErrors({});
  history.replaceState(null, "", draft && draft.id != null ? `#group-${draft.id}` : location.pathname);
  renderList();
  renderForm();
  if (id === "new") form.elements.name.focus();
}

// --- saving and deleting ---------------------------------------------------------------

async function save() {
  const creating = draft.id == null;
  const body = bodyOf(draft);
  try {
    const stored = creating ? await api("POST", "/api/v1/groups", body)
      : await api("PATCH", `/api/v1/groups/${draft.id}`, body);
    await load();
    dirty = false;
    draft = null;
    select(stored.id);
    showResult(true, creating ? `${stored.name} is created.` : `${stored.name} is saved.`);
  } catch (err) {
    const fields = err.fields || {};
    showFieldErrors(fields);
    // Errors of fields with no place in the form (a grant, an author) go with the message.
    const shown = new Set([...form.querySelectorAll(".field-error")].map((s) => s.dataset.field));
    const rest = Object.entries(fields).filter(([name]) => !shown.has(name));
    showResult(false, rest.length && err.message === "invalid request body"
      ? rest.map(([name, text]) => `${name}: ${text}`).join("; ") : err.message);
  }
}

async function remove() {
  const name = draft.name;
  const n = draft.members.size;
  if (!window.confirm(`Delete the group ${name}? Its ${n} member${n === 1 ? "" : "s"} lose what it gives them.`)) {
    return;
  }
  try {
    await api("DELETE", `/api/v1/groups/${draft.id}`);
  } catch (err) {
    showResult(false, err.message);
    return;
  }
  dirty = false;
  draft = null;
  history.replaceState(null, "", location.pathname);
  await load();
  renderForm();
  showMessage(pageError, "");
}

async function load() {
  try {
    [catalog, groups, users, rooms] = await Promise.all([
      api("GET", "/api/v1/rights"), api("GET", "/api/v1/groups"), api("GET", "/api/v1/users"),
      api("GET", "/api/v1/rooms")]);
    showMessage(pageError, "");
  } catch (err) {
    showMessage(pageError, err.message);
    return;
  }
  renderList();
}

async function start() {
  document.getElementById("new-group").addEventListener("click", () => select("new"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(form.querySelector(".save"), "Saving…", save);
  });
  form.querySelector(".delete").addEventListener("click", (ev) => busy(ev.currentTarget, "Deleting…", remove));
  form.querySelector(".add-member .add").addEventListener("click", () => {
    if (!memberSelect.value) return;
    draft.members.add(Number(memberSelect.value));
    touched();
    renderMembers();
  });
  for (const name of ["name", "description"]) form.elements[name].addEventListener("input", touched);
  window.addEventListener("beforeunload", (ev) => { if (dirty) ev.preventDefault(); });
  await load();
  // A new group's form needs the rights, users and rooms: offered once they are here.
  document.getElementById("new-group").disabled = !catalog.length;
  const wanted = /^#group-(\d+)$/.exec(location.hash);
  if (wanted && groups.some((g) => g.id === Number(wanted[1]))) select(Number(wanted[1]));
}

start();
