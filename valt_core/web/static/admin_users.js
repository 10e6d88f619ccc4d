// Admin > Users: the users, adding one, disabling and enabling, resetting a password, and the
// built-in group (role) of each. Everything goes through the API, which checks and audits it.
// Text from the API is always set with textContent, never as HTML.

import {api} from "./api.js";
import {busy, el, showMessage} from "./dom.js";

const ROLES = [["admin", "Administrators"], ["operator", "Operators"], ["viewer", "Viewers"],
               ["", "None"]];

const page = JSON.parse(document.getElementById("page-data").textContent);
const table = document.querySelector(".user-table tbody");
const form = document.getElementById("user-form");
const pageError = document.getElementById("page-error");

let users = [];
const resetting = new Set();  // ids of the users whose reset-password form is open
const outcomes = new Map();   // user id -> {ok, message}: the last change's answer, shown by the row


function showResult(box, ok, message) {
  box.hidden = !message;
  box.className = `result ${ok ? "ok" : "bad"}`;
  box.textContent = message || "";
}

/** The API's message, with the field errors it names (a form shows those at their fields). */
function explain(err) {
  const fields = Object.entries(err.fields || {});
  return fields.length ? fields.map(([name, text]) => `${name}: ${text}`).join("; ") : err.message;
}

const who = (user) => user.display_name || user.username;

/** Run a change to `user`, keep its answer for the row, and show the list again. */
async function change(user, work, done) {
  outcomes.clear();  // one answer shown at a time, by the row it is about
  try {
    await work();
    outcomes.set(user.id, {ok: true, message: done});
  } catch (err) {
    outcomes.set(user.id, {ok: false, message: explain(err)});
  }
  await refresh();
}

// --- the built-in group ----------------------------------------------------------------

async function setRole(user, role) {
  if (role) {
    await api("PATCH", `/api/v1/users/${user.id}`, {role});
    return;
  }
  // No built-in group: the users API only moves people between the three, so take them out
  // of each through the groups API (fresh lists: a PATCH replaces the members whole).
  const groups = await api("GET", "/api/v1/groups");
  for (const group of groups.filter((g) => g.builtin && g.members.includes(user.id))) {
    await api("PATCH", `/api/v1/groups/${group.id}`, {members: group.members.filter((id) => id !== user.id)});
  }
}

function roleCell(user) {
  const select = el("select", {name: "role"},
    ...ROLES.map(([value, label]) => el("option", {value, textContent: label})));
  select.value = user.role;
  select.setAttribute("aria-label", `Built-in group of ${user.username}`);
  if (user.id === page.me) {
    select.disabled = true;
    select.title = "Nobody can take away their own admin role.";
  }
  select.addEventListener("change", async () => {
    select.disabled = true;
    const label = select.selectedOptions[0].textContent;
    await change(user, () => setRole(user, select.value),
                 select.value ? `${who(user)} is now in ${label}.` : `${who(user)} is in no built-in group now.`);
  });
  return el("td", {className: "role"}, select);
}

// --- the list --------------------------------------------------------------------------

function passwordForm(user) {
  const input = el("input", {type: "password", name: "password", maxLength: 1024, autocomplete: "new-password"});
  input.setAttribute("aria-label", `New password for ${user.username}`);
  const save = el("button", {type: "submit", className: "primary", textContent: "Set password"});
  const cancel = el("button", {type: "button", textContent: "Cancel"});
  const reset = el("form", {className: "password-form", noValidate: true},
    el("label", {}, "New password ", input), save, cancel,
    el("span", {className: "help"}, "At least 8 characters; they are signed out everywhere."));
  reset.addEventListener("submit", (ev) => {
    ev.preventDefault();
    busy(save, "Setting…", () => change(user, async () => {
      await api("PATCH", `/api/v1/users/${user.id}`, {password: input.value});
      resetting.delete(user.id);
    }, `New password set for ${who(user)}.`));
  });
  cancel.addEventListener("click", () => {
    resetting.delete(user.id);
    render();
  });
  return reset;
}

function render() {
  const rows = [];
  for (const user of users) {
    const toggle = el("button", {type: "button", className: user.disabled ? "enable" : "disable danger",
                                 textContent: user.disabled ? "Enable" : "Disable"});
    if (user.id === page.me) {
      toggle.disabled = true;
      toggle.title = "You cannot disable yourself.";
    }
    toggle.addEventListener("click", () => busy(toggle, user.disabled ? "Enabling…" : "Disabling…", () =>
      change(user, () => api("PATCH", `/api/v1/users/${user.id}`, {disabled: !user.disabled}),
             `${who(user)} is ${user.disabled ? "enabled" : "disabled"}.`)));
    const reset = el("button", {type: "button", className: "reset", textContent: "Reset password"});
    reset.addEventListener("click", () => {
      resetting.add(user.id);
      outcomes.delete(user.id);
      render();
      table.querySelector(`tr.user-detail[data-username="${CSS.escape(user.username)}"] input`).focus();
    });
    const state = user.disabled ? "disabled" : "enabled";
    const row = el("tr", {className: "user-row"},
      el("td", {className: "username"}, user.username),
      el("td", {className: "display-name"}, user.display_name),
      el("td", {className: "groups"}, el("span", {className: "badges"},
        ...user.groups.map((g) => el("span", {className: "badge"}, g.name)))),
      el("td", {className: "backend"}, user.auth_backend),
      el("td", {className: "last-login"}, user.last_login_at ? new Date(user.last_login_at).toLocaleString() : "never"),
      el("td", {className: `state state-${state}`}, state),
      roleCell(user),
      el("td", {className: "actions"}, toggle,
         // A directory's or provider's people change their password there, not here.
         page.password_backends.includes(user.auth_backend) ? reset : ""));
    row.dataset.username = user.username;
    rows.push(row);
    const outcome = outcomes.get(user.id);
    const box = el("div", {className: "result", role: "status"});
    showResult(box, outcome && outcome.ok, outcome && outcome.message);
    const detail = el("tr", {className: "user-detail"},
      el("td", {colSpan: 8}, resetting.has(user.id) ? passwordForm(user) : "", box));
    detail.dataset.username = user.username;
    detail.hidden = !resetting.has(user.id) && !outcome;
    rows.push(detail);
  }
  if (!rows.length) rows.push(el("tr", {}, el("td", {colSpan: 8, className: "empty"}, "No users.")));
  table.replaceChildren(...rows);
}

async function refresh() {
  try {
    users = await api("GET", "/api/v1/users");
    showMessage(pageError, "");
  } catch (err) {
    showMessage(pageError, err.message);
    return;
  }
  render();
}

// --- adding a user ---------------------------------------------------------------------

function showFieldErrors(fields) {
  for (const span of form.querySelectorAll(".field-error")) span.textContent = fields[span.dataset.field] || "";
}

async function addUser(button) {
  const box = form.querySelector(".result");
  const f = form.elements;
  const body = {username: f.username.value.trim(), display_name: f.display_name.value.trim(),
                password: f.password.value, role: f.role.value || null};
  await busy(button, "Adding…", async () => {
    try {
      const user = await api("POST", "/api/v1/users", body);
      form.reset();
      showFieldErrors({});
      showResult(box, true, `${who(user)} can sign in now as ${user.username}.`);
    } catch (err) {
      const fields = err.fields || {};
      showFieldErrors(fields);
      // A field error is shown at its field; the box says what the API said.
      showResult(box, false, Object.keys(fields).length ? `${err.message} (see the fields marked in red)`
        : err.message);
    }
  });
  await refresh();
}

function start() {
  document.getElementById("add-user").addEventListener("click", () => {
    form.hidden = false;
    showResult(form.querySelector(".result"), true, "");
    form.elements.username.focus();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    addUser(form.querySelector("button[type=submit]"));
  });
  form.querySelector("[data-form=cancel]").addEventListener("click", () => {
    form.hidden = true;
    showFieldErrors({});
  });
  refresh();
}

start();
