/**
 * What a test file made on the shared servers: the Moleculer namespaces it used (testEnv records
 * them) and the PostgreSQL databases it created (createTestDatabase). Every run on the machine
 * shares these servers, and none of this expires by itself: the setup file
 * `leave-nothing-behind.ts` removes it all when the file is done.
 */
export const namespacesInUse = new Set<string>();
export const databasesInUse = new Set<string>();
