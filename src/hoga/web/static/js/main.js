// The dashboard's entry point: sign-in, the page shell (top bar, tabs, connection state) and a
// hash router (#/overview, #/trade?symbol=005930, ...). Each page module exports
// mount(container, params) returning {unmount(), refresh?()}.

import * as api from "./api.js";
import { h, replace, toast } from "./dom.js";
import { lang, onLang, setLang, t } from "./i18n.js";
import { tOr } from "./words.js";
import { liveState, onLiveState, startLive, stopLive } from "./live.js";
import { renderLoginPage, showLoginOverlay } from "./pages/login.js";
import { store } from "./store.js";
import * as overview from "./pages/overview.js";
import * as trade from "./pages/trade.js";
import * as chart from "./pages/chart.js";
import * as strategies from "./pages/strategies.js";
import * as backtests from "./pages/backtests.js";
import * as accounts from "./pages/accounts.js";
import * as security from "./pages/security.js";
import * as admin from "./pages/admin.js";
import * as historyPage from "./pages/history.js";
import * as profit from "./pages/profit.js";
import * as notifications from "./pages/notifications.js";
import { startNotices, stopNotices } from "./notify.js";
import { clearTicketDraft } from "./ticket-draft.js";
import { loadNames } from "./names.js";

const ROUTES = [
  { name: "overview", label: "nav.overview", page: overview },
  { name: "trade", label: "nav.trade", page: trade },
  { name: "chart", label: "nav.chart", page: chart },
  { name: "history", label: "nav.history", page: historyPage },
  { name: "profit", label: "nav.profit", page: profit },
  { name: "strategies", label: "nav.strategies", page: strategies },
  { name: "backtests", label: "nav.backtests", page: backtests },
  { name: "accounts", label: "nav.accounts", page: accounts },
  { name: "notifications", label: "nav.notifications", page: notifications },
  { name: "security", label: "nav.security", page: security },
  { name: "admin", label: "nav.admin", page: admin, adminOnly: true },
];

const root = document.getElementById("app");
let health = { simulated: true };
let current = null; // {route, params, handle}
let mainEl = null;
let bannerEl = null;
let signedInAs = null; // {id, username}

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [name, query] = raw.split("?");
  return { name: name || "overview", params: new URLSearchParams(query || "") };
}

function routeFor(name) {
  const route = ROUTES.find((r) => r.name === name);
  if (!route || (route.adminOnly && !store.me?.is_admin)) return ROUTES[0];
  return route;
}

// --- the shell --------------------------------------------------------------------------

function connLabel({ state, detail }) {
  if (state === "open") return t("conn.open");
  if (state === "reconnecting") return t("conn.reconnecting", { n: detail.attempt || 1 });
  if (state === "connecting") return t("conn.connecting");
  if (state === "closed") return t("conn.closed");
  return t("conn.idle");
}

function renderConn() {
  const el = document.getElementById("conn");
  const live = liveState();
  if (el) {
    el.dataset.state = live.state;
    el.querySelector(".text").textContent = connLabel(live);
  }
  if (bannerEl) {
    const lost = live.state === "reconnecting" || live.state === "closed";
    bannerEl.classList.toggle("hidden", !lost);
    bannerEl.textContent = lost ? t("conn.banner", { s: Math.ceil((live.detail.delay || 0) / 1000) }) : "";
  }
}

let lastLiveState = "idle";
onLiveState((live) => {
  renderConn();
  if (live.state === "open" && (lastLiveState === "reconnecting" || lastLiveState === "closed")) {
    toast(t("conn.restored"), "ok");
  }
  lastLiveState = live.state;
});

function renderShell() {
  const me = store.me;
  const simBadge = health.simulated
    ? h("span", { class: "sim-badge", title: t("sim.title") }, t("sim.badge"))
    : h("span", { class: "sim-badge live-badge" }, t("sim.live"));
  const langBtn = h("button", {
    type: "button",
    class: "small",
    lang: lang() === "ko" ? "en" : "ko",
    "aria-label": t("lang.switch_label"),
    onclick: () => setLang(lang() === "ko" ? "en" : "ko"),
  }, lang() === "ko" ? "English" : "한국어");
  const signOut = h("button", { type: "button", class: "small", onclick: signOutClicked }, t("nav.sign_out"));
  const header = h("header", { class: "topbar" },
    h("a", { class: "brand", href: "#/overview" }, "hoga", h("small", null, "호가")),
    simBadge,
    h("span", { id: "conn", class: "conn", role: "status", "aria-live": "polite" }, h("span", { class: "dot", "aria-hidden": "true" }), h("span", { class: "text" })),
    h("span", { class: "spacer" }),
    h("span", { class: "who" }, me ? `${me.username} · ${tOr(`tier.${me.tier}`, me.tier)}${me.is_admin ? ` · ${t("who.admin")}` : ""}` : ""),
    langBtn,
    signOut);
  const list = h("ul", null, ROUTES.filter((r) => !r.adminOnly || me?.is_admin).map((r) =>
    h("li", null, h("a", { href: `#/${r.name}`, dataset: { route: r.name } }, t(r.label)))));
  // On a narrow screen the tabs scroll sideways: a fade and an arrow on the side that has more.
  const more = h("button", { type: "button", class: "tabs-more", "aria-label": t("nav.more"), tabindex: "-1",
    onclick: () => list.scrollBy({ left: list.clientWidth * 0.7, behavior: "smooth" }) }, "›");
  const nav = h("nav", { class: "tabs", "aria-label": t("nav.label") }, list, more);
  const cue = () => {
    nav.classList.toggle("more-right", list.scrollLeft + list.clientWidth < list.scrollWidth - 2);
    nav.classList.toggle("more-left", list.scrollLeft > 2);
  };
  list.addEventListener("scroll", cue, { passive: true });
  window.addEventListener("resize", cue);
  requestAnimationFrame(cue);
  bannerEl = h("div", { class: "banner error hidden", role: "alert" });
  mainEl = h("main", { id: "main", tabindex: "-1" });
  replace(root, header, nav, bannerEl, mainEl);
  root.setAttribute("aria-busy", "false");
  renderConn();
}

function mountRoute() {
  if (!mainEl) return;
  const { name, params } = parseHash();
  const route = routeFor(name);
  if (current?.handle?.unmount) current.handle.unmount();
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.route === route.name) {
      a.setAttribute("aria-current", "page");
      a.scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    else a.removeAttribute("aria-current");
  }
  mainEl.replaceChildren();
  document.title = `${t(route.label)} · hoga 호가`;
  const handle = route.page.mount(mainEl, params);
  current = { route, params, handle };
}

// --- sign-in and sign-out ------------------------------------------------------------------

async function enterApp() {
  const [me] = await Promise.all([store.loadMe(), loadNames()]);
  // /health tells strangers only ok/down; signed in, it also says whether the market is simulated.
  health = await api.get("/health").catch(() => health);
  signedInAs = { id: me.id, username: me.username };
  store.attach();
  startNotices();
  startLive();
  renderShell();
  mountRoute();
  store.loadAll().catch((e) => toast(e.message, "error"));
}

async function signOutClicked() {
  document.querySelector(".overlay")?.remove();
  root.inert = false;
  if (current?.handle?.unmount) current.handle.unmount();
  current = null;
  stopNotices();
  stopLive();
  await api.logout();
  store.reset();
  clearTicketDraft();
  signedInAs = null;
  mainEl = null;
  history.replaceState(null, "", location.pathname); // the next person starts at the overview
  showSignIn();
}

function showSignIn(notice) {
  renderLoginPage(root, {
    notice,
    simulated: health.simulated,
    onSignedIn: () => enterApp().catch((e) => toast(e.message, "error")),
  });
}

// The session ended while the page was open: sign in again above the page, keeping its state.
api.onSessionExpired(() => {
  if (!signedInAs || document.querySelector(".overlay")) return;
  stopLive();
  const previous = signedInAs;
  showLoginOverlay({
    notice: t("login.expired"),
    username: previous.username,
    simulated: health.simulated,
    onSignedIn: async () => {
      const me = await store.loadMe();
      if (me.id !== previous.id) {
        // Someone else signed in: start afresh, nothing of the previous user stays on screen.
        clearTicketDraft();
        store.reset();
        await enterApp();
        return;
      }
      startLive();
      store.loadAll().catch(() => {});
      current?.handle?.refresh?.();
    },
  });
});

onLang(() => {
  if (mainEl) {
    renderShell();
    mountRoute();
  } else if (!api.hasSession()) {
    showSignIn();
  }
});

// The page's static text in the chosen language (index.html is written in Korean).
function staticText() {
  const skip = document.querySelector(".skip-link");
  if (skip) skip.textContent = t("nav.skip");
  const loading = document.querySelector(".boot");
  if (loading) loading.textContent = t("common.loading");
}
staticText();
onLang(staticText);

// The skip link focuses the page without touching the hash (which is the router's).
document.querySelector(".skip-link")?.addEventListener("click", (ev) => {
  ev.preventDefault();
  document.getElementById("main")?.focus();
});

window.addEventListener("hashchange", () => {
  if (mainEl) mountRoute();
});

async function boot() {
  try {
    health = await api.publicGet("/health");
  } catch {
    health = { simulated: true };
  }
  if (api.hasSession()) {
    try {
      await enterApp();
      return;
    } catch {
      // fall through to sign-in
    }
  }
  showSignIn();
}

boot();
