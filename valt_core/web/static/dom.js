// Small DOM helpers the admin pages share. Plain ES module, no build step.

/** A DOM element: el("td", {className: "x"}, "text", childNode, ...). Text goes in as text, never HTML. */
export function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) if (child != null) node.append(child);
  return node;
}

/** Show `message` in `box` (hidden when there is none). */
export function showMessage(box, message) {
  box.textContent = message || "";
  box.hidden = !message;
}

/** Run `work` with `button` disabled and labelled `label`, so a slow call cannot be made twice.
    The old label comes back unless the work relabelled the button itself. */
export async function busy(button, label, work) {
  const text = button.textContent;
  button.disabled = true;
  button.textContent = label;
  try {
    await work();
  } finally {
    button.disabled = false;
    if (button.textContent === label) button.textContent = text;
  }
}
