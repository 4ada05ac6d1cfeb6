// Korean particles (조사) chosen by the word they follow: 주문 #1이 / 백테스트 #2를, never "이(가)".
//
// A particle depends on whether the last sound has a final consonant (받침). For a Hangul
// syllable that is (code - 0xAC00) % 28 != 0; digits and Latin letters are read aloud
// (1 일 -> 받침, 2 이 -> none, ...). (으)로 is special: a final ㄹ takes 로, like no 받침.

const DIGIT_BATCHIM = { 0: true, 1: true, 2: false, 3: true, 4: false, 5: false, 6: true, 7: true, 8: true, 9: false };
// English letters as Koreans read them: L, M, N, R end in a consonant.
const LATIN_BATCHIM = new Set(["l", "m", "n", "r"]);
const LATIN_RIEUL = new Set(["l", "r"]);

/** {batchim, rieul} for the last readable character of ``word`` (null when none). */
export function finalSound(word) {
  const s = String(word ?? "").replace(/[\s)\]}"'’”.,!?%]+$/u, "");
  const ch = s.slice(-1);
  if (!ch) return null;
  const code = ch.charCodeAt(0);
  if (code >= 0xac00 && code <= 0xd7a3) {
    const jong = (code - 0xac00) % 28;
    return { batchim: jong !== 0, rieul: jong === 8 };
  }
  if (/\d/.test(ch)) return { batchim: DIGIT_BATCHIM[ch], rieul: ch === "1" || ch === "7" || ch === "8" };
  if (/[a-z]/i.test(ch)) {
    const c = ch.toLowerCase();
    return { batchim: LATIN_BATCHIM.has(c), rieul: LATIN_RIEUL.has(c) };
  }
  return null;
}

const PAIRS = {
  "이/가": ["이", "가"],
  "을/를": ["을", "를"],
  "은/는": ["은", "는"],
  "과/와": ["과", "와"],
  "와/과": ["과", "와"],
  "이나/나": ["이나", "나"],
  "으로/로": ["으로", "로"],
  "(으)로": ["으로", "로"],
};

/** ``word`` followed by the right form of ``particle`` ("이/가", "을/를", "은/는", "와/과", "(으)로"). */
export function josa(word, particle) {
  const [withBatchim, without] = PAIRS[particle] || [particle, particle];
  const sound = finalSound(word);
  let pick;
  if (!sound) pick = without;
  else if (particle === "(으)로" || particle === "으로/로") pick = sound.batchim && !sound.rieul ? withBatchim : without;
  else pick = sound.batchim ? withBatchim : without;
  return `${word}${pick}`;
}

/**
 * Resolve particle placeholders against ``vars``: "{id|을/를}" is the value with its particle
 * ("주문 #{id|을/를}" with {id: 1} -> "주문 #1을"), "{name?을/를}" only the particle (for a value in
 * quotes: "'{name}'{name?을/를}"). Used by i18n.t.
 */
export function fillJosa(text, vars) {
  return text.replace(/\{(\w+)([|?])([^}]+)\}/g, (m, name, mode, particle) => {
    if (!(name in vars)) return m;
    const word = String(vars[name]);
    const full = josa(word, particle);
    return mode === "|" ? full : full.slice(word.length);
  });
}
