// The Review page: every recording the user may see, newest first, a page at a time from the
// API; search, filters and the page live in the page's URL so a link shows the same list.
// Renaming for those who may edit, deleting (after a confirmation) for those who may delete.
// Text from the API is always set with textContent.

import {api} from "./api.js";
import {el, showMessage} from "./dom.js";

const PAGE_SIZE = 50;
const TYPING_DELAY_MS = 300;
// While a listed recording runs, the page is asked again now and then: its length grows, and its
// thumbnail appears once the first segment is written.
const RUNNING_REFRESH_MS = 10000;
const FILTERS = ["q", "shared", "from", "to", "room_id", "author_id", "state"];

const root = document.getElementById("review");
const rights = JSON.parse(root.dataset.rights);
const form = document.getElementById("review-filters");
const body = document.querySelector("#review-table tbody");
const table = document.getElementById("review-table");
const errorBox = document.getElementById("review-error");
const emptyBox = document.getElementById("review-empty");
const totalBox = document.getElementById("review-total");
const pageBox = document.getElementById("review-page");
const prevButton = document.querySelector("[data-page=prev]");
const nextButton = document.querySelector("[data-page=next]");
const authorSelect = form.elements.author_id;
const dialog = document.getElementById("delete-dialog");

let page = 1;          // 1-based, as shown and as in the URL
let lastPage = 1;
let loadSeq = 0;       // answers to older requests than the latest are dropped
let typingTimer = null;
let refreshTimer = null;
// Authors offered in the filter: every user for an admin (GET /users needs users.manage), else
// the authors seen in the answers so far; the text search also finds a recording by its author.
const authors = new Map();  // id -> name
let allUsersKnown = false;

// --- how values are shown ----------------------------------------------------------------

/** Seconds as h:mm:ss. */
function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds || 0));
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

const localTime = new Intl.DateTimeFormat(undefined, {dateStyle: "medium", timeStyle: "short"});

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// --- dates: <input type=date> values are local days; the API takes instants -----------------

function dayValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

/** The instant local midnight of `value` (YYYY-MM-DD) begins, `plusDays` later, as ISO (UTC). */
function localMidnight(value, plusDays = 0) {
  const [y, m, d] = value.split("-").map(Number);
  // The Date constructor works in the browser's zone, DST included: day + 1 is the next midnight.
  return new Date(y, m - 1, d + plusDays).toISOString();
}

// --- the state: form <-> URL <-> API query ------------------------------------------------

function filtersFromForm() {
  const wanted = {};
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) wanted[name] = value;
  }
  return wanted;
}

function pageUrl() {
  const params = new URLSearchParams(filtersFromForm());
  if (page > 1) params.set("page", String(page));
  const query = params.toString();
  return location.pathname + (query ? `?${query}` : "");
}

function restoreFromUrl() {
  const params = new URLSearchParams(location.search);
  const authorId = params.get("author_id");
  if (authorId && !authors.has(Number(authorId))) {
    authors.set(Number(authorId), `user ${authorId}`);  // named once an answer shows them
    fillAuthors();
  }
  for (const name of FILTERS) form.elements[name].value = params.get(name) || "";
  page = Math.max(1, parseInt(params.get("page"), 10) || 1);
}

function apiQuery() {
  const wanted = filtersFromForm();
  const params = new URLSearchParams();
  if (wanted.q) params.set("q", wanted.q);
  for (const name of ["shared", "room_id", "author_id", "state"]) if (wanted[name]) params.set(name, wanted[name]);
  if (wanted.from) params.set("from", localMidnight(wanted.from));
  if (wanted.to) params.set("to", localMidnight(wanted.to, 1));  // "to" is the whole day, inclusive
  params.set("limit", String(PAGE_SIZE));
  params.set("offset", String((page - 1) * PAGE_SIZE));
  return params.toString();
}

/** Put the state in the URL: a new history entry for a page turn, the same one for filters. */
function saveUrl(push) {
  const url = pageUrl();
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

// --- authors ------------------------------------------------------------------------------

function fillAuthors() {
  const chosen = authorSelect.value;
  const options = [...authors].sort((a, b) => a[1].localeCompare(b[1]))
    .map(([id, name]) => el("option", {value: String(id), textContent: name}));
  authorSelect.replaceChildren(el("option", {value: "", textContent: "Anyone"}), ...options);
  authorSelect.value = chosen;
}

async function loadUsers() {
  try {
    const users = await api("GET", "/api/v1/users");
    for (const u of users) authors.set(u.id, u.display_name || u.username);
    allUsersKnown = true;
    fillAuthors();
  } catch (err) {
    if (err.status !== 403) console.warn("users:", err.message);  // not an admin: authors seen
  }
}

function learnAuthors(items) {
  if (allUsersKnown) return;
  let added = false;
  for (const rec of items) {
    if (rec.author_id != null && rec.author && authors.get(rec.author_id) !== rec.author) {
      authors.set(rec.author_id, rec.author);
      added = true;
    }
  }
  if (added) fillAuthors();
}

// --- the list -----------------------------------------------------------------------------

function thumbnail(rec) {
  const placeholder = () => el("span", {className: "thumb placeholder", textContent: "No picture yet"});
  const img = el("img", {className: "thumb", src: rec.thumbnail_url, alt: "", loading: "lazy",
                         width: 160, height: 90});
  img.addEventListener("error", () => img.replaceWith(placeholder()), {once: true});
  return el("a", {href: `/review/recordings/${rec.id}`, tabIndex: -1, className: "thumb-link"}, img);
}

function badges(rec) {
  const box = el("span", {className: "badges"});
  if (rec.markers) box.append(el("span", {className: "badge markers", title: "Markers",
                                          textContent: plural(rec.markers, "marker")}));
  if (rec.gaps) box.append(el("span", {className: "badge gaps", title: "Gaps in the recorded media",
                                       textContent: plural(rec.gaps, "gap")}));
  if (rec.state === "interrupted") {
    box.append(el("span", {className: "badge interrupted", textContent: "interrupted",
                           title: "Valt stopped without finishing it; what was recorded was recovered"}));
  }
  if (rec.legal_hold) box.append(el("span", {className: "badge hold", textContent: "legal hold"}));
  return box;
}

function nameCell(rec) {
  const cell = el("td", {className: "name"});
  const show = () => {
    const link = el("a", {href: `/review/recordings/${rec.id}`, textContent: rec.name || `Recording ${rec.id}`});
    cell.replaceChildren(link);
    if (rights.edit) {
      const rename = el("button", {type: "button", className: "rename", textContent: "Rename",
                                   title: "Rename this recording"});
      rename.addEventListener("click", edit);
      cell.append(" ", rename);
    }
  };
  const edit = () => {
    const input = el("input", {type: "text", value: rec.name, maxLength: 200, className: "rename-input",
                               ariaLabel: "New name"});
    const save = el("button", {type: "button", textContent: "Save"});
    const cancel = el("button", {type: "button", textContent: "Cancel"});
    const message = el("span", {className: "field-error", role: "alert"});
    const commit = async () => {
      const name = input.value.trim();
      if (!name || name === rec.name) { show(); return; }
      save.disabled = input.disabled = true;
      try {
        const changed = await api("PATCH", `/api/v1/recordings/${rec.id}`, {name});
        rec.name = changed.name;
        show();
      } catch (err) {
        save.disabled = input.disabled = false;
        message.textContent = err.fields.name || err.message;
        input.focus();
      }
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") { ev.preventDefault(); commit(); }
      if (ev.key === "Escape") { ev.preventDefault(); show(); }
    });
    save.addEventListener("click", commit);
    cancel.addEventListener("click", show);
    cell.replaceChildren(el("span", {className: "rename-form"}, input, save, cancel), message);
    input.focus();
    input.select();
  };
  show();
  return cell;
}

function row(rec) {
  const started = new Date(rec.started_at);
  const tr = el("tr", {className: "recording"});
  tr.dataset.recordingId = rec.id;
  tr.dataset.state = rec.state;
  const actions = el("td", {className: "actions"});
  if (rights.delete) {
    const remove = el("button", {type: "button", className: "danger delete", textContent: "Delete"});
    remove.addEventListener("click", () => confirmDelete(rec));
    actions.append(remove);
  }
  tr.append(
    el("td", {className: "thumb-cell"}, thumbnail(rec)),
    nameCell(rec),
    el("td", {className: "room", textContent: rec.room || "—"}),
    el("td", {className: "author", textContent: rec.author || "—"}),
    el("td", {className: "started"}, el("time", {dateTime: rec.started_at, textContent: localTime.format(started),
                                                  title: started.toString()})),
    el("td", {className: "duration num", textContent: clock(rec.duration_s)}),
    el("td", {className: "cameras", textContent: rec.cameras.length ? rec.cameras.join(", ") : "—"}),
    el("td", {className: "state"}, el("div", {className: "state-box"},
      el("span", {className: `rec-state state-${rec.state}`, textContent: rec.state}), badges(rec))),
    actions,
  );
  return tr;
}

function hasFilters() {
  return Object.keys(filtersFromForm()).length > 0;
}

async function load() {
  const seq = ++loadSeq;
  root.dataset.loading = "true";
  try {
    const answer = await api("GET", `/api/v1/recordings?${apiQuery()}`);
    if (seq !== loadSeq) return;
    lastPage = Math.max(1, Math.ceil(answer.total / PAGE_SIZE));
    if (page > lastPage && answer.total > 0) {  // e.g. the last one of the last page was deleted
      page = lastPage;
      saveUrl(false);
      load();
      return;
    }
    showMessage(errorBox, "");
    learnAuthors(answer.items);
    body.replaceChildren(...answer.items.map(row));
    table.hidden = answer.items.length === 0;
    const from = answer.total ? answer.offset + 1 : 0;
    totalBox.textContent = answer.total
      ? `${plural(answer.total, "recording")} · showing ${from}–${answer.offset + answer.items.length}`
      : "";
    pageBox.textContent = `page ${page} of ${lastPage}`;
    prevButton.disabled = page <= 1;
    nextButton.disabled = page >= lastPage;
    showMessage(emptyBox, answer.total ? "" : (hasFilters() ? "No recording matches the search and filters."
                                                              : "No recordings yet."));
    clearTimeout(refreshTimer);
    if (answer.items.some((rec) => rec.state === "recording" || rec.state === "paused")) {
      refreshTimer = setTimeout(refreshIfIdle, RUNNING_REFRESH_MS);
    }
  } catch (err) {
    if (seq !== loadSeq) return;
    showMessage(errorBox, `Could not load the recordings: ${err.message}`);
  } finally {
    if (seq === loadSeq) root.dataset.loading = "false";
  }
}

function refreshIfIdle() {
  // Never under the user's hands: not while a name is being edited or the dialog is open.
  if (body.querySelector(".rename-form") || dialog.open) refreshTimer = setTimeout(refreshIfIdle, RUNNING_REFRESH_MS);
  else load();
}

/** The filters changed: back to the first page. */
function filtersChanged() {
  clearTimeout(typingTimer);
  page = 1;
  saveUrl(false);
  load();
}

// --- deleting -----------------------------------------------------------------------------

let deleting = null;
const dialogError = dialog.querySelector(".error");
const confirmButton = dialog.querySelector("[data-confirm]");

function confirmDelete(rec) {
  deleting = rec;
  dialog.querySelector(".what").textContent = rec.name || `Recording ${rec.id}`;
  showMessage(dialogError, "");
  confirmButton.disabled = false;
  dialog.showModal();
}

confirmButton.addEventListener("click", async () => {
  if (!deleting) return;
  confirmButton.disabled = true;
  try {
    await api("DELETE", `/api/v1/recordings/${deleting.id}`);
    deleting = null;
    dialog.close();
    await load();
  } catch (err) {
    // Refused (running, legal hold) or failed: the dialog stays open with the reason.
    showMessage(dialogError, err.message);
  } finally {
    confirmButton.disabled = false;
  }
});
dialog.addEventListener("close", () => { deleting = null; });

// --- events -------------------------------------------------------------------------------

form.addEventListener("submit", (ev) => { ev.preventDefault(); filtersChanged(); });
form.elements.q.addEventListener("input", () => {
  clearTimeout(typingTimer);
  typingTimer = setTimeout(filtersChanged, TYPING_DELAY_MS);
});
for (const name of ["shared", "from", "to", "room_id", "author_id", "state"]) {
  form.elements[name].addEventListener("change", filtersChanged);
}
form.addEventListener("reset", () => setTimeout(filtersChanged));  // after the form cleared itself
for (const button of form.querySelectorAll("[data-range]")) {
  button.addEventListener("click", () => {
    const today = new Date();
    const from = new Date(today.getFullYear(), today.getMonth(), today.getDate() - (button.dataset.range === "week" ? 6 : 0));
    form.elements.from.value = dayValue(from);
    form.elements.to.value = dayValue(today);
    filtersChanged();
  });
}
prevButton.addEventListener("click", () => { if (page > 1) { page -= 1; saveUrl(true); load(); } });
nextButton.addEventListener("click", () => { if (page < lastPage) { page += 1; saveUrl(true); load(); } });
window.addEventListener("popstate", () => { restoreFromUrl(); load(); });

restoreFromUrl();
loadUsers();
load();
