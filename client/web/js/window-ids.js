// WINDOW_RESTACK's payload on the windows channel: u32 window ids, bottom to
// top, 4n bytes (docs/protocol.md section 8b).
//
// Why its own module: it is the one windows-channel message that is neither
// a struct nor JSON in the generated table (codec "custom", nested:u32s), so
// protocol.js hands it here; errors are made by the caller's `bad` so the
// reason code stays protocol.js's.

// Most ids in one WINDOW_RESTACK (the server's MAX_WINDOWS).
export const MAX_WINDOWS = 256;
const U32 = 2 ** 32;

function check(ids, bad) {
  if (!Array.isArray(ids) || ids.length > MAX_WINDOWS) throw bad(`lists more than ${MAX_WINDOWS} windows`);
  for (const id of ids) if (!Number.isInteger(id) || id < 1 || id >= U32) throw bad(`window id ${id} out of range`);
}

/** The payload of a list of window ids. */
export function encodeWindowIds(ids, bad) {
  check(ids, bad);
  const out = new Uint8Array(4 * ids.length);
  const view = new DataView(out.buffer);
  ids.forEach((id, i) => view.setUint32(4 * i, id));
  return out;
}

/** The window ids of a payload; the length is checked before anything is read. */
export function decodeWindowIds(payload, bad) {
  if (payload.length % 4) throw bad('length is not a multiple of 4');
  if (payload.length > 4 * MAX_WINDOWS) throw bad(`lists more than ${MAX_WINDOWS} windows`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const ids = Array.from({ length: payload.length / 4 }, (_, i) => view.getUint32(4 * i));
  check(ids, bad);
  return ids;
}
