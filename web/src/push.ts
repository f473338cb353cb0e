/**
 * Web Push on this device: the service worker (/sw.js, scope /) shows what the notification
 * service sends; the subscription is made with the server's VAPID key and registered through
 * the push-subscriptions endpoints, so the platform can reach this browser.
 */
import { api, ApiError } from "./api.ts";

export type PushState =
	| { kind: "unsupported" }
	/** The server has no VAPID keys: push is off platform-wide. */
	| { kind: "server-off" }
	| { kind: "blocked" }
	| { kind: "off" }
	| { kind: "on"; endpoint: string };

const supported = () => "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

/** Installs (or finds) the console's service worker; push needs one to deliver to. */
export async function serviceWorker(): Promise<ServiceWorkerRegistration> {
	await navigator.serviceWorker.register("/sw.js", { scope: "/", type: "classic" });
	return navigator.serviceWorker.ready;
}

export async function pushState(): Promise<PushState> {
	if (!supported()) return { kind: "unsupported" };
	const { publicKey } = await api<{ publicKey: string | null }>("GET", "/api/v1/notifications/push/vapid-public-key");
	if (!publicKey) return { kind: "server-off" };
	if (Notification.permission === "denied") return { kind: "blocked" };
	const subscription = await (await serviceWorker()).pushManager.getSubscription();
	return subscription ? { kind: "on", endpoint: subscription.endpoint } : { kind: "off" };
}

/** Asks for permission, subscribes with the server's key and registers the device. */
export async function enablePush(deviceName: string): Promise<void> {
	const { publicKey } = await api<{ publicKey: string | null }>("GET", "/api/v1/notifications/push/vapid-public-key");
	if (!publicKey) throw problem("PUSH_NOT_CONFIGURED", "Push notifications are not enabled on this server.");
	if ((await Notification.requestPermission()) !== "granted") throw problem("PERMISSION_DENIED", "The browser did not allow notifications; allow them in the site settings to turn push on.");
	const registration = await serviceWorker();
	let subscription: PushSubscription;
	try {
		subscription = await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: base64UrlToBytes(publicKey) });
	} catch (err) {
		throw problem("PUSH_SUBSCRIBE_FAILED", `This browser could not subscribe to push: ${(err as Error).message}`);
	}
	try {
		await api("POST", "/api/v1/notifications/push-subscriptions", { ...subscription.toJSON(), deviceName });
	} catch (err) {
		// Not registered with the platform: do not leave a subscription nobody sends to.
		await subscription.unsubscribe();
		throw err;
	}
}

/** Unregisters the device, then drops the browser's subscription. */
export async function disablePush(): Promise<void> {
	const subscription = await (await serviceWorker()).pushManager.getSubscription();
	if (!subscription) return;
	await api("DELETE", "/api/v1/notifications/push-subscriptions", { endpoint: subscription.endpoint }).catch((err: unknown) => {
		// Already gone on the server (expired, removed elsewhere): the browser side still goes.
		if (!(err instanceof ApiError && err.problem.status === 404)) throw err;
	});
	await subscription.unsubscribe();
}

const problem = (code: string, detail: string) => new ApiError({ status: 0, code, detail });

/** applicationServerKey wants bytes; the server hands out base64url. */
function base64UrlToBytes(value: string): Uint8Array<ArrayBuffer> {
	const base64 = value.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(value.length / 4) * 4, "=");
	return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}
