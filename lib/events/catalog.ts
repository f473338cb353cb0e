/**
 * The event catalog: every durable event's type and the shape of its `data`.
 * The contract between publishers and consumers; documented in docs/events.md.
 */
export interface UserCreated {
	userId: string;
	email: string;
	name: string | null;
}

export interface EventCatalog {
	"user.created": UserCreated;
}

export type EventType = keyof EventCatalog;
