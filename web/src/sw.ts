/**
 * The console's service worker (served at /sw.js, scope /): shows each web push message the
 * notification service sends (its PushMessage: title, body, url, tag) and opens its link on click.
 */

// Only what this worker uses of ServiceWorkerGlobalScope: the webworker lib clashes with the DOM lib of the app.
interface WaitingEvent {
	waitUntil(work: Promise<unknown>): void;
}
interface WorkerScope {
	registration: ServiceWorkerRegistration;
	clients: { openWindow(url: string): Promise<unknown> };
	addEventListener(type: "push", listener: (event: WaitingEvent & { data: { json(): unknown } | null }) => void): void;
	addEventListener(type: "notificationclick", listener: (event: WaitingEvent & { notification: Notification }) => void): void;
}
declare const self: WorkerScope;

interface PushMessage {
	title: string;
	body: string;
	url: string | null;
	tag: string;
}

self.addEventListener("push", (event) => {
	const message = event.data?.json() as PushMessage | undefined;
	if (!message) return;
	event.waitUntil(self.registration.showNotification(message.title, { body: message.body, tag: message.tag, data: { url: message.url } }));
});

self.addEventListener("notificationclick", (event) => {
	event.notification.close();
	const { url } = event.notification.data as { url: string | null };
	event.waitUntil(self.clients.openWindow(url ?? "/"));
});

export {};
