/** What an authenticator app shows: the TOTP code of a base32 secret at a given time. */
import { Secret, TOTP } from "otpauth";

export const totpCode = (base32: string, at: Date = new Date()) => new TOTP({ secret: Secret.fromBase32(base32), digits: 6, period: 30, algorithm: "SHA1" }).generate({ timestamp: at.getTime() });
