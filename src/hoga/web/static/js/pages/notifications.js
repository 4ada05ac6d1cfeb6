// 알림 설정: in-page notices (browser notification while the tab is hidden, a sound - kept in
// this browser's localStorage) and the server's notification channels (webhook, Telegram,
// Discord, Slack, e-mail) through /api/me/notifications: list, add, switch on/off, choose
// events, send a test, delete. The server stores the address in its vault and only ever shows
// a masked form of it.

import { del, get, patch, post } from "../api.js";
import { h, replace, toast } from "../dom.js";
import { errorBox, errorText, field, showApiError, showBox, clearErrors } from "../forms.js";
import { t } from "../i18n.js";
import { chime, notifySettings, saveNotifySettings } from "../notify.js";

const KINDS = ["webhook", "telegram", "discord", "slack", "email"];
// The apprise URL each kind takes (the server refuses other schemes with notify.invalid_url),
// shown as the address field's placeholder (no real host names: the static files name none).
const EXAMPLES = {
  webhook: "json://host:port/path",
  telegram: "tgram://bottoken/ChatID",
  discord: "discord://webhook_id/webhook_token",
  slack: "slack://TokenA/TokenB/TokenC/#channel",
  email: "mailtos://user:password@host?to=you@host",
};
const DEFAULT_EVENTS = ["fill", "rejection", "unknown_settled", "strategy_error", "kill_switch", "broker_down", "daily_summary"];

function checkbox(label, checked, onchange, props = {}) {
  const input = h("input", { type: "checkbox", checked, ...props });
  input.addEventListener("change", () => onchange(input.checked, input));
  return h("label", { class: "check" }, input, h("span", null, label));
}

export function mount(el) {
  const local = notifySettings();
  const permissionNote = h("p", { class: "muted small", "aria-live": "polite" });
  const channelsEl = h("div", { class: "channels" });
  const listBox = errorBox();
  let available = DEFAULT_EVENTS;

  function renderPermission() {
    if (typeof Notification === "undefined") permissionNote.textContent = t("notify.browser_unsupported");
    else permissionNote.textContent = t(`notify.permission.${Notification.permission}`);
  }

  const browserSwitch = checkbox(t("notify.browser"), local.browser, async (on, input) => {
    if (on && typeof Notification !== "undefined" && Notification.permission === "default") {
      try {
        await Notification.requestPermission();
      } catch {
        // refused or not allowed here
      }
    }
    if (on && (typeof Notification === "undefined" || Notification.permission !== "granted")) {
      input.checked = false;
      on = false;
    }
    saveNotifySettings({ ...notifySettings(), browser: on });
    renderPermission();
  }, { dataset: { setting: "browser" } });
  const soundSwitch = checkbox(t("notify.sound"), local.sound, (on) => {
    saveNotifySettings({ ...notifySettings(), sound: on });
    if (on) chime("ok");
  }, { dataset: { setting: "sound" } });

  // --- a new channel ------------------------------------------------------------------------
  const kindSelect = h("select", null, KINDS.map((k) => h("option", { value: k }, t(`notify.kind.${k}`))));
  const labelInput = h("input", { type: "text", maxlength: 64, autocomplete: "off" });
  const urlInput = h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
  const kindField = field(t("notify.kind"), kindSelect, { name: "kind" });
  const showExample = () => { urlInput.placeholder = EXAMPLES[kindSelect.value] || ""; };
  kindSelect.addEventListener("change", showExample);
  showExample();
  const labelField = field(t("notify.label"), labelInput, { name: "label" });
  const urlField = field(t("notify.url"), urlInput, { name: "url", help: t("notify.url_help") });
  const eventsBox = h("fieldset", { class: "field events", dataset: { field: "events" } }, h("legend", null, t("notify.events")));
  const addBox = errorBox();
  const addBtn = h("button", { type: "submit", class: "primary" }, t("notify.add"));
  const form = h("form", { novalidate: true }, addBox, kindField, labelField, urlField, eventsBox, h("div", { class: "row" }, addBtn));

  function renderEventChoices() {
    replace(eventsBox, h("legend", null, t("notify.events")),
      available.map((e) => h("label", { class: "check" }, h("input", { type: "checkbox", name: "event", value: e, checked: e === "fill" || e === "rejection" }), h("span", null, t(`notify.event.${e}`)))));
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const chosen = [...eventsBox.querySelectorAll("input:checked")].map((i) => i.value);
    if (!labelInput.value.trim() || !urlInput.value.trim() || !chosen.length) {
      showBox(addBox, t("notify.err_fill"));
      return;
    }
    addBtn.disabled = true;
    try {
      await post("/api/me/notifications", {
        kind: kindSelect.value, label: labelInput.value.trim(), url: urlInput.value.trim(), events: chosen, enabled: true,
      });
      urlInput.value = ""; // the address goes to the server's vault and is never shown again
      labelInput.value = "";
      toast(t("notify.added"), "ok");
      await load();
    } catch (e) {
      showApiError(form, addBox, e, { kind: kindField, label: labelField, url: urlField });
    } finally {
      addBtn.disabled = false;
    }
  });

  // --- the list ---------------------------------------------------------------------------------
  function channelCard(c) {
    const enabled = checkbox(t("notify.enabled"), c.enabled, async (on, input) => {
      try {
        await patch(`/api/me/notifications/${c.id}`, { enabled: on });
      } catch (e) {
        input.checked = !on;
        toast(errorText(e), "error");
      }
    });
    const events = h("div", { class: "row wrap" }, available.map((e) => checkbox(t(`notify.event.${e}`), c.events.includes(e), async (on, input) => {
      const next = on ? [...new Set([...c.events, e])] : c.events.filter((x) => x !== e);
      try {
        const updated = await patch(`/api/me/notifications/${c.id}`, { events: next });
        c.events = updated?.events || next;
      } catch (err) {
        input.checked = !on;
        toast(errorText(err), "error");
      }
    })));
    return h("article", { class: "channel card", dataset: { channel: c.id } },
      h("div", { class: "card-head" },
        h("h3", null, `${c.label} · ${t(`notify.kind.${c.kind}`)}`),
        h("span", { class: "mono muted small" }, c.target_masked)),
      enabled, events,
      h("div", { class: "row" },
        h("button", { type: "button", class: "small", onclick: async () => {
          try {
            await post(`/api/me/notifications/${c.id}/test`);
            toast(t("notify.test_sent"), "ok");
          } catch (e) {
            toast(errorText(e), "error");
          }
        } }, t("notify.test")),
        h("button", { type: "button", class: "small danger", onclick: async () => {
          if (!window.confirm(t("notify.confirm_delete", { label: c.label }))) return;
          try {
            await del(`/api/me/notifications/${c.id}`);
            await load();
          } catch (e) {
            toast(errorText(e), "error");
          }
        } }, t("notify.delete"))));
  }

  async function load() {
    showBox(listBox, null);
    try {
      const data = await get("/api/me/notifications");
      available = data.available_events?.length ? data.available_events : DEFAULT_EVENTS;
      renderEventChoices();
      replace(channelsEl, data.channels.length ? data.channels.map(channelCard) : h("p", { class: "empty" }, t("notify.none")));
    } catch (e) {
      renderEventChoices();
      replace(channelsEl);
      showBox(listBox, e.status === 404 ? t("notify.server_missing") : errorText(e));
    }
  }

  el.append(
    h("h1", null, t("notify.title")),
    h("div", { class: "grid" },
      h("section", { class: "card span-12", "aria-labelledby": "local-h" },
        h("h2", { id: "local-h" }, t("notify.in_page")),
        h("p", { class: "muted small" }, t("notify.in_page_help")),
        browserSwitch, permissionNote, soundSwitch),
      h("section", { class: "card span-6", "aria-labelledby": "ch-h" },
        h("h2", { id: "ch-h" }, t("notify.channels")), listBox, channelsEl),
      h("section", { class: "card span-6", "aria-labelledby": "add-h" },
        h("h2", { id: "add-h" }, t("notify.new_channel")), form)),
  );
  renderPermission();
  renderEventChoices();
  load();
  return { unmount() {}, refresh: load };
}
