// Who is signed in: the key (kept by api.js in sessionStorage) and what /whoami said of it.
// Screens read the role through canTrain() only; signing in and out is the entry point's.

import { api, forgetKey, storeKey } from "./api.js";

let whoami = null;

/** Trainer and admin keys may upload, train, cancel and activate; a reader's may not. */
export const canTrain = () => whoami !== null && whoami.role !== "reader";

/** What /whoami said of the signed-in key, or null when signed out. */
export const identity = () => whoami;

/** Keep the key and ask /whoami about it; a refused key is forgotten again. */
export async function signIn(key) {
  storeKey(key);
  try {
    whoami = await api.whoami();
  } catch (error) {
    forgetKey();
    throw error;
  }
  return whoami;
}

export function signOut() {
  forgetKey();
  whoami = null;
}
