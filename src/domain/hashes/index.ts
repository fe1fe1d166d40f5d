/**
 * Imported password hashes: which encodings userport reads, how it checks them before storing
 * and how it verifies a password against them. See registry.ts; each family has its own file.
 */
export {
  DEFAULT_HASH_LIMITS,
  HASH_FAMILY_NAMES,
  type HashFamilyName,
  type HashLimits,
} from "./family.js";
export {
  createHashRegistry,
  parseHashFamilyList,
  type HashFamilyInfo,
  type HashRegistry,
  type HashRegistryOptions,
} from "./registry.js";
