import type { InputKindName } from './input-kinds.js';
import type { OutputFormatName } from './outputs.js';

/**
 * Which stored format already carries the source's audio as it is, so that it can be copied rather than
 * re-encoded: MP3 (layer III only: layers I and II are MPEG audio too, but not MP3), Opus in Ogg, and
 * FLAC. `undefined` when the head does not show it, which only costs a re-encode.
 */
export function copyableAs(kind: InputKindName, head: Buffer): OutputFormatName | undefined {
  switch (kind) {
    case 'flac':
      return 'flac';
    case 'ogg':
      return firstOggPacketStartsWith(head, 'OpusHead') ? 'opus' : undefined;
    case 'mp3': {
      const frame = firstMpegFrameOffset(head);
      return typeof frame === 'number' && isLayer3(head, frame) ? 'mp3' : undefined;
    }
    default:
      return undefined;
  }
}

/**
 * Where the first MPEG audio frame of an MP3 begins: after its ID3v2 tag, if any (whose size is a
 * syncsafe integer, plus a footer when flagged). `{ need }` when the head is too short to tell.
 */
export function firstMpegFrameOffset(head: Buffer): number | { readonly need: number } {
  if (head.length < 10) return { need: 10 };
  if (head.toString('latin1', 0, 3) !== 'ID3') return 0;
  const size = ((head[6]! & 0x7f) << 21) | ((head[7]! & 0x7f) << 14) | ((head[8]! & 0x7f) << 7) | (head[9]! & 0x7f);
  const footer = (head[5]! & 0x10) !== 0 ? 10 : 0;
  const offset = 10 + size + footer;
  return head.length >= offset + 4 ? offset : { need: offset + 4 };
}

function isLayer3(head: Buffer, offset: number): boolean {
  const b1 = head[offset];
  const b2 = head[offset + 1];
  // 11 sync bits, then the layer field (bits 2–1 of the second byte) is 01 for layer III.
  return b1 === 0xff && b2 !== undefined && (b2 & 0xe0) === 0xe0 && ((b2 >> 1) & 0x03) === 0x01;
}

/** The first packet of an Ogg stream starts right after the first page's header and segment table. */
function firstOggPacketStartsWith(head: Buffer, signature: string): boolean {
  if (head.length < 27 || head.toString('latin1', 0, 4) !== 'OggS') return false;
  const packetStart = 27 + head[26]!;
  return head.toString('latin1', packetStart, packetStart + signature.length) === signature;
}
