/**
 * A software passkey authenticator (WebAuthn Level 3, "none" attestation, ES256), to drive the
 * passkey ceremonies over the API the way a browser and a platform authenticator do: it answers
 * the server's options with the JSON a browser would send, signing with a P-256 key of its own.
 * Its knobs make the answers a real authenticator must never give (no user verification, another
 * origin, a counter that goes back) so tests can show the server refuses them.
 */
import { createHash, generateKeyPairSync, randomBytes, sign } from "node:crypto";
import type { KeyObject } from "node:crypto";

const b64url = (bytes: Buffer | Uint8Array) => Buffer.from(bytes).toString("base64url");
const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest();

type Cbor = number | string | Buffer | Cbor[] | Map<number | string, Cbor>;

/** The little CBOR (RFC 8949) WebAuthn needs: unsigned and negative integers, byte and text strings, maps. */
export function cbor(value: Cbor): Buffer {
	const head = (major: number, n: number) => {
		if (n < 24) return Buffer.from([(major << 5) | n]);
		if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
		if (n < 0x10000) return Buffer.from([(major << 5) | 25, n >> 8, n & 0xff]);
		const b = Buffer.alloc(5);
		b[0] = (major << 5) | 26;
		b.writeUInt32BE(n, 1);
		return b;
	};
	if (typeof value === "number") return value >= 0 ? head(0, value) : head(1, -1 - value);
	if (typeof value === "string") return Buffer.concat([head(3, Buffer.byteLength(value)), Buffer.from(value)]);
	if (Buffer.isBuffer(value)) return Buffer.concat([head(2, value.length), value]);
	if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(cbor)]);
	return Buffer.concat([head(5, value.size), ...[...value].flatMap(([k, v]) => [cbor(k), cbor(v)])]);
}

interface CreationOptions {
	challenge: string;
	rp: { id?: string };
	user: { id: string };
	authenticatorSelection?: { userVerification?: string };
}
interface RequestOptions {
	challenge: string;
	rpId?: string;
}

export interface SoftPasskey {
	credentialId: Buffer;
	rpId: string;
	userHandle: string;
	privateKey: KeyObject;
	counter: number;
}

export interface AnswerOptions {
	origin: string;
	/** Whether the user proved who they are to the device (fingerprint, PIN). */
	userVerified?: boolean;
	/** Override the signature counter (a cloned key sends one that does not grow). */
	counter?: number;
	/** Sign another challenge than the server's (a replayed answer). */
	challenge?: string;
	/** The length of a new credential's id (real ones have 16 to 1023 bytes). */
	credentialIdBytes?: number;
}

const FLAG_UP = 0x01;
const FLAG_UV = 0x04;
const FLAG_AT = 0x40;

export class SoftAuthenticator {
	readonly passkeys: SoftPasskey[] = [];

	/** navigator.credentials.create(): a new key pair, its public half in the attestation. */
	create(options: CreationOptions, answer: AnswerOptions) {
		const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
		const jwk = publicKey.export({ format: "jwk" });
		const coseKey = cbor(new Map<number, Cbor>([[1, 2], [3, -7], [-1, 1], [-2, Buffer.from(jwk.x!, "base64url")], [-3, Buffer.from(jwk.y!, "base64url")]]));
		const credentialId = randomBytes(answer.credentialIdBytes ?? 32);
		const passkey: SoftPasskey = { credentialId, rpId: options.rp.id ?? new URL(answer.origin).hostname, userHandle: options.user.id, privateKey, counter: 0 };
		const idLength = Buffer.alloc(2);
		idLength.writeUInt16BE(credentialId.length);
		const authData = Buffer.concat([this.authDataHead(passkey, answer, FLAG_AT), Buffer.alloc(16), idLength, credentialId, coseKey]);
		const clientDataJSON = Buffer.from(JSON.stringify({ type: "webauthn.create", challenge: answer.challenge ?? options.challenge, origin: answer.origin, crossOrigin: false }));
		this.passkeys.push(passkey);
		return {
			id: b64url(credentialId),
			rawId: b64url(credentialId),
			type: "public-key",
			response: { clientDataJSON: b64url(clientDataJSON), attestationObject: b64url(cbor(new Map<string, Cbor>([["fmt", "none"], ["attStmt", new Map()], ["authData", authData]]))), transports: ["internal"] },
		};
	}

	/** navigator.credentials.get(): a signature over the challenge by a passkey for this site (the newest, or `passkey`). */
	get(options: RequestOptions, answer: AnswerOptions, passkey = this.passkeys.filter((p) => p.rpId === (options.rpId ?? new URL(answer.origin).hostname)).at(-1)) {
		if (!passkey) throw new Error(`no passkey for ${options.rpId ?? answer.origin}`);
		passkey.counter += 1;
		const authData = this.authDataHead(passkey, answer, 0);
		const clientDataJSON = Buffer.from(JSON.stringify({ type: "webauthn.get", challenge: answer.challenge ?? options.challenge, origin: answer.origin, crossOrigin: false }));
		const signature = sign("sha256", Buffer.concat([authData, sha256(clientDataJSON)]), passkey.privateKey);
		return {
			id: b64url(passkey.credentialId),
			rawId: b64url(passkey.credentialId),
			type: "public-key",
			response: { clientDataJSON: b64url(clientDataJSON), authenticatorData: b64url(authData), signature: b64url(signature), userHandle: passkey.userHandle },
		};
	}

	private authDataHead(passkey: SoftPasskey, answer: AnswerOptions, extraFlags: number): Buffer {
		const counter = Buffer.alloc(4);
		counter.writeUInt32BE(answer.counter ?? passkey.counter);
		const flags = FLAG_UP | (answer.userVerified === false ? 0 : FLAG_UV) | extraFlags;
		return Buffer.concat([sha256(passkey.rpId), Buffer.from([flags]), counter]);
	}
}
