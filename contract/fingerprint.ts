/**
 * CRC-64-AVRO (the Rabin fingerprint of the Avro specification) over a schema's Parsing Canonical
 * Form. It is what the single-object encoding puts after `C3 01`, so any Avro implementation can
 * identify our writer schema without a registry.
 */
const EMPTY = 0xc15d213aa4d7a795n
const MASK = 0xffffffffffffffffn

const TABLE: bigint[] = Array.from({ length: 256 }, (_, i) => {
  let fp = BigInt(i)
  for (let j = 0; j < 8; j++) fp = (fp >> 1n) ^ (EMPTY & -(fp & 1n) & MASK)
  return fp
})

export function crc64Avro(text: string): bigint {
  let fp = EMPTY
  for (const byte of Buffer.from(text, 'utf8')) {
    fp = (fp >> 8n) ^ TABLE[Number((fp ^ BigInt(byte)) & 0xffn)]!
  }
  return fp
}

/** The 8 fingerprint bytes as the single-object header carries them (little-endian). */
export function fingerprintBytes(canonical: string): Buffer {
  const out = Buffer.alloc(8)
  out.writeBigUInt64LE(crc64Avro(canonical))
  return out
}
