// Minimal Ogg encapsulation of Opus (RFC 7845) for the moshi protocol: the browser's WebCodecs
// encoder yields bare Opus packets and its decoder wants bare packets, while the protocol carries
// one continuous Ogg stream per direction. Written here instead of vendoring a library.
"use strict";

const OGG_CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = (r & 0x80000000) ? ((r << 1) ^ 0x04c11db7) : (r << 1);
    table[i] = r >>> 0;
  }
  return table;
})();

function oggCrc(bytes) {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++) crc = ((crc << 8) ^ OGG_CRC_TABLE[((crc >>> 24) ^ bytes[i]) & 0xff]) >>> 0;
  return crc >>> 0;
}

class OggOpusMuxer {
  constructor(sampleRate, serial) {
    this.sampleRate = sampleRate;
    this.serial = serial >>> 0;
    this.sequence = 0;
    this.granule = 0; // in 48 kHz samples, as RFC 7845 requires
  }
  page(packet, headerType, granule) {
    const segments = [];
    let left = packet.length;
    while (left >= 255) { segments.push(255); left -= 255; }
    segments.push(left);
    const page = new Uint8Array(27 + segments.length + packet.length);
    const view = new DataView(page.buffer);
    page.set([0x4f, 0x67, 0x67, 0x53], 0); // "OggS"
    page[4] = 0; page[5] = headerType;
    view.setUint32(6, granule % 0x100000000, true);
    view.setUint32(10, Math.floor(granule / 0x100000000), true);
    view.setUint32(14, this.serial, true);
    view.setUint32(18, this.sequence++, true);
    page[26] = segments.length;
    page.set(segments, 27);
    page.set(packet, 27 + segments.length);
    view.setUint32(22, oggCrc(page), true);
    return page;
  }
  headers() {
    const head = new Uint8Array(19);
    const hv = new DataView(head.buffer);
    head.set(new TextEncoder().encode("OpusHead"), 0);
    head[8] = 1; head[9] = 1; // version, channels
    hv.setUint16(10, 312, true); // pre-skip (libopus default, 48 kHz samples)
    hv.setUint32(12, this.sampleRate, true);
    hv.setInt16(16, 0, true); head[18] = 0;
    const vendor = new TextEncoder().encode("jmoshi-web");
    const tags = new Uint8Array(8 + 4 + vendor.length + 4);
    const tv = new DataView(tags.buffer);
    tags.set(new TextEncoder().encode("OpusTags"), 0);
    tv.setUint32(8, vendor.length, true);
    tags.set(vendor, 12);
    tv.setUint32(12 + vendor.length, 0, true);
    return [this.page(head, 0x02, 0), this.page(tags, 0x00, 0)];
  }
  packet(data, durationSamples48k) {
    this.granule += durationSamples48k;
    return this.page(data, 0x00, this.granule);
  }
}

class OggDemuxer {
  // Feed arbitrary byte chunks; returns the complete packets they finish.
  constructor() { this.buffer = new Uint8Array(0); this.partial = []; }
  push(chunk) {
    const merged = new Uint8Array(this.buffer.length + chunk.length);
    merged.set(this.buffer, 0); merged.set(chunk, this.buffer.length);
    this.buffer = merged;
    const packets = [];
    for (;;) {
      if (this.buffer.length < 27) break;
      if (this.buffer[0] !== 0x4f || this.buffer[1] !== 0x67 || this.buffer[2] !== 0x67 || this.buffer[3] !== 0x53) {
        throw new Error("bad Ogg capture pattern");
      }
      const nseg = this.buffer[26];
      if (this.buffer.length < 27 + nseg) break;
      const lacing = this.buffer.subarray(27, 27 + nseg);
      let size = 0;
      for (const l of lacing) size += l;
      if (this.buffer.length < 27 + nseg + size) break;
      let offset = 27 + nseg;
      for (const l of lacing) {
        this.partial.push(this.buffer.slice(offset, offset + l));
        offset += l;
        if (l < 255) {
          const total = this.partial.reduce((n, p) => n + p.length, 0);
          const packet = new Uint8Array(total);
          let o = 0;
          for (const p of this.partial) { packet.set(p, o); o += p.length; }
          this.partial = [];
          packets.push(packet);
        }
      }
      this.buffer = this.buffer.slice(offset);
    }
    return packets;
  }
}

function isOpusHeader(packet) {
  if (packet.length < 8) return false;
  const magic = new TextDecoder().decode(packet.subarray(0, 8));
  return magic === "OpusHead" || magic === "OpusTags";
}
