// HTTP to the hoga API, and the sign-in session.
//
// Tokens live in sessionStorage (this tab only; a reload keeps you signed in, closing the tab
// forgets them). Nothing else secret is ever stored. The access token is refreshed silently a
// minute before it expires, and once more if the server answers 401 "expired"; the refresh
// token rotates on every refresh, so the new one replaces the old. A tab never shares its refresh
// token with another tab: hoga treats a reused refresh token as theft and ends the session.
//
// When the session cannot be renewed, every listener of onSessionExpired() is told; the page stays
// as it is under the sign-in overlay, so nothing typed is lost.

import { lang } from "./i18n.js";

const STORE_KEY = "hoga.session";
const REFRESH_MARGIN_S = 60;

/** An error answer from the API: status, machine-readable code, human message, offending field. */
export class ApiError extends Error {
  constructor(status, code, message, { field = null, fields = null, body = null } = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
    this.fields = fields;
    this.body = body;
  }
}

let state = loadState();
let refreshing = null; // the single refresh in flight, shared by every caller
let refreshTimer = null;
const expiredListeners = new Set();
const tokenListeners = new Set();

function loadState() {
  try {
    const raw = sessionStorage.getItem(STORE_KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

function saveState() {
  if (state) sessionStorage.setItem(STORE_KEY, JSON.stringify(state));
  else sessionStorage.removeItem(STORE_KEY);
}

function adopt(pair) {
  state = {
    access: pair.access_token,
    refresh: pair.refresh_token,
    // Server time is not known; count from now with a margin so we refresh early.
    expiresAt: Date.now() + pair.expires_in * 1000,
  };
  saveState();
  scheduleRefresh();
  for (const fn of tokenListeners) fn(state.access);
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!state) return;
  const wait = Math.max(5_000, state.expiresAt - Date.now() - REFRESH_MARGIN_S * 1000);
  refreshTimer = setTimeout(() => {
    refreshTokens().catch(() => {});
  }, wait);
}

/** True when this tab holds a session (it may still turn out to be expired). */
export function hasSession() {
  return state !== null;
}

/** The current access token (for WebSocket authentication), or null. */
export function accessToken() {
  return state ? state.access : null;
}

/** Called with the new access token after every sign-in or refresh. */
export function onTokens(fn) {
  tokenListeners.add(fn);
  return () => tokenListeners.delete(fn);
}

/** Called when the session has ended (expired, revoked) and the person must sign in again. */
export function onSessionExpired(fn) {
  expiredListeners.add(fn);
  return () => expiredListeners.delete(fn);
}

function expire(reason) {
  state = null;
  saveState();
  clearTimeout(refreshTimer);
  for (const fn of expiredListeners) fn(reason);
}

/** Renew the access token with the refresh token; one refresh at a time for the whole tab. */
export function refreshTokens() {
  if (refreshing) return refreshing;
  if (!state) return Promise.reject(new ApiError(401, "session.none", "not signed in"));
  const token = state.refresh;
  refreshing = (async () => {
    try {
      const pair = await request("POST", "/api/auth/refresh", { refresh_token: token }, { auth: false });
      adopt(pair);
      return state.access;
    } catch (e) {
      if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
        expire(e);
      }
      throw e;
    } finally {
      refreshing = null;
    }
  })();
  return refreshing;
}

/** Sign in. Throws ApiError; code "auth.otp_required" means: ask for the one-time code. */
export async function login(username, password, otp) {
  const body = { username, password };
  if (otp) body.otp = otp;
  const pair = await request("POST", "/api/auth/login", body, { auth: false });
  adopt(pair);
}

/** Sign out: revoke the session on the server, then forget the tokens. */
export async function logout() {
  try {
    if (state) await api("POST", "/api/auth/logout", { refresh_token: state.refresh });
  } catch {
    // Signing out locally is what matters; the server session ends on its own.
  }
  state = null;
  saveState();
  clearTimeout(refreshTimer);
}

async function parseError(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  const err = (body && body.error) || {};
  const details = err.details || {};
  return new ApiError(
    res.status,
    err.code || `http.${res.status}`,
    err.message || `HTTP ${res.status}`,
    { field: err.field || details.field || null, fields: err.fields || null, body },
  );
}

async function request(method, path, body, { auth = true, headers = {} } = {}) {
  // Accept-Language: the server answers its messages in the language on screen.
  const init = {
    method,
    headers: { Accept: "application/json", "Accept-Language": lang(), "X-Hoga-Client": "dashboard", ...headers },
  };
  if (body !== undefined && body !== null) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (auth && state) init.headers.Authorization = `Bearer ${state.access}`;
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "network");
  }
  if (!res.ok) throw await parseError(res);
  if (res.status === 204) return null;
  return res.json();
}

const RENEWABLE = new Set(["token.expired", "token.invalid", "auth.missing_token", "unauthorized"]);

/**
 * Call the API as the signed-in user. Renews the token first when it is about to expire, and
 * once more on a 401 that a fresh token could fix. Throws ApiError with code "session.expired"
 * when the person has to sign in again.
 */
export async function api(method, path, body) {
  if (!state) {
    throw new ApiError(401, "session.expired", "session expired");
  }
  if (state.expiresAt - Date.now() < 15_000) {
    await refreshTokens().catch(() => {});
    if (!state) throw new ApiError(401, "session.expired", "session expired");
  }
  try {
    return await request(method, path, body);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    if (!RENEWABLE.has(e.code)) {
      // Revoked, disabled: the session is over.
      expire(e);
      throw new ApiError(401, "session.expired", e.message);
    }
    try {
      await refreshTokens();
    } catch (re) {
      // No session left: sign in again. Anything else (network) is reported as it is.
      if (!state) throw new ApiError(401, "session.expired", e.message);
      throw re;
    }
    return request(method, path, body);
  }
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body ?? {});
export const put = (path, body) => api("PUT", path, body ?? {});
export const patch = (path, body) => api("PATCH", path, body ?? {});
export const del = (path) => api("DELETE", path);

/** GET a file (CSV export) as a Blob with the session's token; renews the token like api(). */
export async function download(path) {
  if (!state) throw new ApiError(401, "session.expired", "session expired");
  if (state.expiresAt - Date.now() < 15_000) await refreshTokens().catch(() => {});
  const res = await fetch(path, {
    headers: { Authorization: `Bearer ${state?.access}`, "Accept-Language": lang(), Accept: "text/csv" },
  });
  if (!res.ok) throw await parseError(res);
  return res.blob();
}

/** Unauthenticated GET (health). */
export function publicGet(path) {
  return request("GET", path, null, { auth: false });
}

/** Build a query string from an object, skipping empty values. */
export function qs(params) {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : "";
}

// Renew on return to a tab that slept through its refresh timer.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && state && state.expiresAt - Date.now() < REFRESH_MARGIN_S * 1000) {
    refreshTokens().catch(() => {});
  }
});

if (state) scheduleRefresh();
