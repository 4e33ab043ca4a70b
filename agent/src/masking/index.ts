export {
  compileMasker,
  maskValue,
  DEFAULT_REDACTION,
  DEFAULT_HASH_PREFIX,
  HASH_HEX_DIGITS,
  MIN_HASH_KEY_BYTES,
  type Masker,
  type MaskStrategy,
  type MaskKind,
} from './strategies.js';
export {
  compileDetectors,
  maskText,
  DETECTOR_NAMES,
  DEFAULT_PLACEHOLDERS,
  type DetectorName,
  type DetectorOptions,
  type DetectorMatch,
  type TextDetector,
} from './detectors.js';
export {
  generalizeAge,
  generalizeDate,
  generalizeZip,
  RESTRICTED_ZIP3,
  AGE_CEILING,
  type GeneralizeAs,
} from './generalize.js';
export {
  binaryToText,
  binaryToTextBuffer,
  isBinaryDecodable,
  MASKED_COLUMN_TYPE_OID,
  TYPE_OID,
} from './binary.js';
