// Asking the browser to keep the site's storage (the page's side of the IndexedDB store): a helper
// with no imports, so the page's bundle can call it without the store's code. Not the store itself
// (store-idb.ts).

/**
 * Asks the browser to keep this site's storage under storage pressure (`navigator.storage.persist()`,
 * which exists on the page, not in workers). True when granted, false when refused, null where the
 * call is unavailable.
 */
export async function requestPersistentStorage(): Promise<boolean | null> {
  const storage = typeof navigator === 'undefined' ? undefined : navigator.storage;
  if (!storage || typeof storage.persist !== 'function') return null;
  try {
    return await storage.persist();
  } catch {
    return null;
  }
}
