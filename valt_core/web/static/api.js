// Calls to Valt's JSON API from signed-in pages: the session cookie, the page's CSRF token,
// and the API's error body turned into an exception a page can show.

const csrf = document.querySelector('meta[name="csrf-token"]').content;

/** An API answer that was not 2xx: `message` for people, `fields` for form errors. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body.message || `request failed (${status})`);
    this.status = status;
    this.fields = (body.details && body.details.fields) || {};
  }
}

/** `method path` with an optional JSON body; resolves to the JSON answer ({} for 204). */
export async function api(method, path, body) {
  const headers = {"X-CSRF-Token": csrf};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {method, credentials: "same-origin", headers,
                               body: body === undefined ? undefined : JSON.stringify(body)});
  const answer = r.status === 204 ? {} : await r.json().catch(() => ({}));
  if (!r.ok) throw new ApiError(r.status, answer);
  return answer;
}
