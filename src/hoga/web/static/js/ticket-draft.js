// What was typed in the order ticket, kept in sessionStorage so that a reload, a language switch
// or an expired session does not lose it. It holds no secret: symbol, side, type, quantity,
// price and account. Cleared on sign-out and when another user signs in.

const KEY = "hoga.ticket";

export function loadTicketDraft() {
  try {
    const raw = sessionStorage.getItem(KEY);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function saveTicketDraft(draft) {
  try {
    sessionStorage.setItem(KEY, JSON.stringify(draft));
  } catch {
    // storage full or disabled: the form itself still holds the values
  }
}

export function clearTicketDraft() {
  try {
    sessionStorage.removeItem(KEY);
  } catch {
    // nothing to clear
  }
}
