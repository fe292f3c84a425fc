/**
 * The HTTP/1.1 field grammar (RFC 9110 §5, RFC 9112 §5) and head limit shared by devproxy's own HTTP/1.1 code:
 * the upstream client, its response parser and the client-side front.
 */

/** A field name or method: an RFC 9110 token. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * A character a header value may not hold (as node:http and undici): anything but tab, visible
 * ASCII and 0x80–0xff. Values are written as latin1, so a character above U+00FF would keep only
 * its low byte (U+010D a CR, U+010A a LF): refused, like every control character.
 */
export const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;
/** `token ":" OWS value OWS`: no space before the colon, no control byte but HTAB in the value. */
export const FIELD_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\0-\x08\x0a-\x1f\x7f]*?)[ \t]*$/;
/** A Content-Length value. */
export const DIGITS = /^[0-9]{1,15}$/;
/** Longest message head (request or status line and fields, and a chunked body's trailer section), as node:http's default. */
export const MAX_HEAD_BYTES = 16 * 1024;
/** The end of a message head. */
export const CRLF_CRLF = Buffer.from('\r\n\r\n', 'latin1');
