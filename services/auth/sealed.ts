/**
 * Secrets auth must be able to read back (signing keys, TOTP secrets), kept at rest under the
 * key-encryption key with AES-256-GCM. The associated data binds a ciphertext to what it belongs
 * to (a key id, a user id), so a row copied onto another cannot be opened.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

export interface Sealed {
	ciphertext: Buffer;
	iv: Buffer;
	tag: Buffer;
}

export function seal(kek: Buffer, aad: string, plaintext: Buffer): Sealed {
	const iv = randomBytes(12);
	const cipher = createCipheriv("aes-256-gcm", kek, iv);
	cipher.setAAD(Buffer.from(aad, "utf8"));
	const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
	return { ciphertext, iv, tag: cipher.getAuthTag() };
}

export function open(kek: Buffer, aad: string, sealed: Sealed): Buffer {
	const decipher = createDecipheriv("aes-256-gcm", kek, sealed.iv);
	decipher.setAAD(Buffer.from(aad, "utf8"));
	decipher.setAuthTag(sealed.tag);
	return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
}
