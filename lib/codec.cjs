'use strict'
// Stored values back into JS values: what a read returns is exactly JSON.parse of the text
// JSON.stringify wrote. Values arrive as MessagePack (transcoded from that text on the writer
// thread, in the subset src/codec.rs describes) or, where MessagePack could not carry them
// with JSON.parse's semantics (and in format-1 records), as JSON text.

const { Unpackr } = require('msgpackr')

/**
 * Creates the decoders of one store over `protocol` (init()'s layout object) and the text
 * helpers. `textOf(buf, start, end, ascii)` turns bytes into a string; `loadShapes(from)`
 * gives the key lists of the store's shapes from id `from` on (src/shapes.rs): a record
 * reference to a shape not loaded yet loads what the store has now, which includes it, since
 * a record and the shapes it uses are committed together and shapes never change.
 *
 * Plain maps decode as plain objects; msgpackr renames a "__proto__" key, which is why no
 * writer stores one (such values stay JSON text) and no shape has one. The writer emits no
 * extensions, 64-bit integers or float32.
 */
function createValueDecoders(protocol, textOf, loadShapes) {
  const shapes = []
  const unpackr = new Unpackr({
    mapsAsObjects: true,
    getStructures() {
      for (const keys of loadShapes(shapes.length)) shapes.push(keys)
      // A fresh array: msgpackr puts its own array of structures back as it was after this
      // call, then merges what it returned (keeping the readers it compiled).
      return shapes.slice()
    },
  })
  // One options object, reused: unpack() reads its start and end and keeps nothing.
  const range = { start: 0, end: 0 }

  /** buf[start, end), MessagePack, as a JS value. */
  function unpackValue(buf, start, end) {
    range.start = start
    range.end = end
    return unpackr.unpack(buf, range)
  }

  const { VALUE_JSON, PAGE_FLAG_DONE, PAGE_COUNT_AT, PAGE_BODY_LEN_AT, PAGE_JSON_COUNT_AT, PAGE_HEADER_LEN, PAGE_JSON_INDEX_LEN } = protocol

  /** A value of `kind` (VALUE_*) in buf[start, end); `ascii` only matters for JSON. */
  function decodeValue(buf, start, end, kind, ascii) {
    if (kind === VALUE_JSON) return JSON.parse(textOf(buf, start, end, ascii))
    return unpackValue(buf, start, end)
  }

  /**
   * Decodes the entries page in buf[start, end) into `[key, value]` pairs; records on `scan`
   * the cursor to continue after and whether it was the last page.
   */
  function decodePage(buf, start, end, scan) {
    const flags = buf[start]
    const count = buf.readUInt32LE(start + PAGE_COUNT_AT)
    const bodyStart = start + PAGE_HEADER_LEN
    const bodyEnd = bodyStart + buf.readUInt32LE(start + PAGE_BODY_LEN_AT)
    const jsonCount = buf.readUInt32LE(start + PAGE_JSON_COUNT_AT)
    const cursorStart = bodyEnd + PAGE_JSON_INDEX_LEN * jsonCount
    // A copy: the page may sit in the scratch buffer, which the next native call reuses.
    scan.after = cursorStart < end ? Buffer.from(buf.subarray(cursorStart, end)) : null
    scan.lastPage = (flags & PAGE_FLAG_DONE) === PAGE_FLAG_DONE
    const pairs = unpackValue(buf, bodyStart, bodyEnd)
    if (!Array.isArray(pairs) || pairs.length !== count) {
      throw new Error(`an entries page holds ${Array.isArray(pairs) ? pairs.length : 'no'} pairs, not ${count}`)
    }
    for (let i = 0; i < jsonCount; i++) {
      const pair = pairs[buf.readUInt32LE(bodyEnd + PAGE_JSON_INDEX_LEN * i)]
      pair[1] = JSON.parse(pair[1])
    }
    return pairs
  }

  /**
   * Decodes a getMany answer in buf[start, end) (the protocol's layout: an entries-style page
   * whose body holds one value per key, then one found byte per key) into an array of values,
   * undefined where a key has none.
   */
  function decodeMany(buf, start, end) {
    const count = buf.readUInt32LE(start + PAGE_COUNT_AT)
    const bodyStart = start + PAGE_HEADER_LEN
    const bodyEnd = bodyStart + buf.readUInt32LE(start + PAGE_BODY_LEN_AT)
    const jsonCount = buf.readUInt32LE(start + PAGE_JSON_COUNT_AT)
    const foundStart = bodyEnd + 4 * jsonCount
    const values = unpackValue(buf, bodyStart, bodyEnd)
    if (!Array.isArray(values) || values.length !== count || foundStart + count !== end) {
      throw new Error(`a getMany answer holds ${Array.isArray(values) ? values.length : 'no'} values, not ${count}`)
    }
    for (let i = 0; i < jsonCount; i++) {
      const at = buf.readUInt32LE(bodyEnd + 4 * i)
      values[at] = JSON.parse(values[at])
    }
    for (let i = 0; i < count; i++) if (buf[foundStart + i] === 0) values[i] = undefined
    return values
  }

  return { decodeValue, decodePage, decodeMany }
}

module.exports = { createValueDecoders }
