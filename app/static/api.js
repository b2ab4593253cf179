// The service's HTTP API as the page uses it: same origin, JSON bodies, every error
// {"error": "..."}. The access token lives in this module's memory only (never in storage a
// script could read later); the refresh token is an HttpOnly cookie the page never sees.

const SIGNED_IN_HINT = "trivia.signedIn"; // "1" after a login: only then is a refresh worth trying
const MAX_RETRIES = 3;

let accessToken = null;
let refreshing = null;

/** Fired (as "unavailable") when the service answers 503 and the call waits to retry. */
export const events = new EventTarget();

export class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.error || `The game service answered ${status}`);
    this.status = status;
    this.fields = body?.errors ?? [];
    this.retryAfter = Number(retryAfter) || 2;
  }
}

// Calls carry the browser's cookies, among them the balancer's affinity cookie: a game made
// while Redis is down lives in one instance's memory, and only that cookie brings the next call
// back to it (without it, every other instance answers 503). Except the game and profile calls
// of a browser signed in earlier that has no access token now: its refresh cookie without a
// token is refused (401), and while accounts are unavailable (no token can be had after a
// reload) that would stop a player from playing even without an account.
function credentialsFor(path) {
  const stranded = accessToken === null && localStorage.getItem(SIGNED_IN_HINT) !== null;
  return path.startsWith("/auth/") || !stranded ? "same-origin" : "omit";
}

async function send(method, path, { json, form, bearer = true } = {}) {
  const headers = {};
  if (bearer && accessToken) headers.Authorization = `Bearer ${accessToken}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart content type and boundary
  }
  const response = await fetch(path, { method, headers, body, credentials: credentialsFor(path) });
  const isJson = (response.headers.get("content-type") || "").startsWith("application/json");
  const data = isJson ? await response.json() : null;
  if (!response.ok) {
    throw new ApiError(response.status, data, response.headers.get("retry-after"));
  }
  return data;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A call that survives what a player should not have to handle: an expired access token
 * (refreshed once, then retried) and a briefly unavailable store (503: retried after
 * Retry-After, a few times; every write of this API is idempotent, so a retry is safe).
 */
async function call(method, path, options = {}) {
  let refreshed = false;
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await send(method, path, options);
    } catch (error) {
      if (error.status === 401 && accessToken && !refreshed) {
        refreshed = true;
        await refresh();
        continue;
      }
      if (error.status === 503 && attempt < MAX_RETRIES) {
        events.dispatchEvent(new CustomEvent("unavailable", { detail: error.message }));
        await sleep(error.retryAfter * 1000);
        continue;
      }
      throw error;
    }
  }
}

// --- accounts ------------------------------------------------------------------------------

function signedIn(body) {
  accessToken = body.accessToken;
  localStorage.setItem(SIGNED_IN_HINT, "1");
  return body.user;
}

function signedOut() {
  accessToken = null;
  localStorage.removeItem(SIGNED_IN_HINT);
}

/** A new access token from the refresh cookie; one request at a time, however many ask. */
export function refresh() {
  refreshing ??= send("POST", "/auth/refresh", { bearer: false })
    .then(signedIn)
    .catch((error) => {
      if (error.status === 401) signedOut();
      throw error;
    })
    .finally(() => {
      refreshing = null;
    });
  return refreshing;
}

/** The player signed in on this browser, or null: tried only after a login on it. */
export async function restore() {
  if (!localStorage.getItem(SIGNED_IN_HINT)) return null;
  try {
    return await refresh();
  } catch (error) {
    if (error.status === 401) return null;
    throw error;
  }
}

export async function login(email, password) {
  return signedIn(await send("POST", "/auth/login", { json: { email, password }, bearer: false }));
}

export async function signup(name, email, password) {
  await send("POST", "/auth/signup", { json: { name, email, password }, bearer: false });
  return login(email, password);
}

export async function logout() {
  try {
    await call("POST", "/auth/logout");
  } finally {
    signedOut();
  }
}

export const profile = () => call("GET", "/api/users/profile");

export const setTimer = (timerMultiplier) =>
  call("PATCH", "/api/users/profile/settings", { json: { timerMultiplier } });

export function uploadAvatar(file) {
  const form = new FormData();
  form.append("avatar", file);
  return call("POST", "/api/users/profile/avatar", { form });
}

// --- the game --------------------------------------------------------------------------------

export const createGame = () => call("POST", "/api/game/session");
export const gameState = (sessionId) => call("GET", `/api/game/session/${sessionId}`);
export const answer = (body) => call("POST", "/api/game/answer", { json: body });
export const results = (sessionId) => call("GET", `/api/game/results/${sessionId}`);
export const health = () => send("GET", "/health", { bearer: false });
