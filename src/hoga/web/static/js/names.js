// Instrument names by code, for tables that only carry codes (orders, fills). The universe is
// fetched once per sign-in (up to the API's 1000-row page); anything missing shows its code.

import { get } from "./api.js";

const names = new Map();
let loading = null;

export function loadNames() {
  if (!loading) {
    loading = get("/api/market/symbols?limit=1000")
      .then((data) => {
        for (const s of data.symbols) names.set(s.symbol, s);
      })
      .catch(() => {
        loading = null;
      });
  }
  return loading;
}

/** The Korean name of ``symbol``, or null when not known (yet). */
export function nameOf(symbol) {
  return names.get(symbol)?.name ?? null;
}

/** The instrument {symbol, name, market, kind} for ``symbol``, or null. */
export function instrument(symbol) {
  return names.get(symbol) ?? null;
}
