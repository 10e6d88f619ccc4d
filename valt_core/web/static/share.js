// The player page's sharing section: who the recording is shared with, and a form to share it
// with a person or a group, view-only or with download, until a date. The API checks each call.

import {api} from "./api.js";
import {el, showMessage} from "./dom.js";

const root = document.getElementById("sharing");
const recordingId = Number(root.dataset.recordingId);
const list = root.querySelector(".share-list");
const form = root.querySelector(".share-form");
const error = form.querySelector(".error");
const dateFormat = new Intl.DateTimeFormat(undefined, {dateStyle: "medium"});

/** The instant local midnight after `value` (YYYY-MM-DD) begins, as ISO: "until" is the whole day. */
function endOfDay(value) {
  const [y, m, d] = value.split("-").map(Number);
  return new Date(y, m - 1, d + 1).toISOString();
}

async function loadTargets() {
  const targets = await api("GET", "/api/v1/share-targets");
  const people = el("optgroup", {label: "People"},
                    ...targets.users.map((u) => el("option", {value: `user:${u.id}`, textContent: u.name})));
  const groups = el("optgroup", {label: "Groups"},
                    ...targets.groups.map((g) => el("option", {value: `group:${g.id}`, textContent: g.name})));
  form.elements.target.append(people, groups);
}

async function loadShares() {
  const shares = await api("GET", `/api/v1/recordings/${recordingId}/shares`);
  const now = Date.now();
  if (!shares.length) {
    list.replaceChildren(el("li", {className: "empty", textContent: "Not shared with anyone."}));
    return;
  }
  list.replaceChildren(...shares.map((share) => {
    const ended = share.until && Date.parse(share.until) <= now;
    const terms = [share.can_download ? "view and download" : "view only"];
    if (share.until) terms.push(`${ended ? "ended" : "until"} ${dateFormat.format(new Date(share.until))}`);
    const stop = el("button", {type: "button", className: "unshare", textContent: "Stop sharing"});
    stop.addEventListener("click", async () => {
      try {
        await api("DELETE", `/api/v1/shares/${share.id}`);
        await loadShares();
      } catch (err) {
        showMessage(error, err.message);
      }
    });
    const item = el("li", {className: ended ? "share ended" : "share"},
                    el("strong", {className: "who", textContent: share.name}),
                    ` (${share.group_id ? "group" : "person"}): `,
                    el("span", {className: "terms", textContent: terms.join(", ")}), " ", stop);
    item.dataset.shareId = String(share.id);
    return item;
  }));
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  error.hidden = true;
  const [kind, id] = form.elements.target.value.split(":");
  const body = {[`${kind}_id`]: Number(id), can_download: form.elements.can_download.checked};
  if (form.elements.until.value) body.until = endOfDay(form.elements.until.value);
  try {
    await api("POST", `/api/v1/recordings/${recordingId}/shares`, body);
    form.reset();
    await loadShares();
  } catch (err) {
    showMessage(error, err.message);
  }
});

Promise.all([loadTargets(), loadShares()]).catch((err) => showMessage(error, err.message));
