"""What ``validate`` finds: one record per problem, with a closed vocabulary of codes."""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"

# Each code names what was detected; used verbatim in JSON output and annotation titles.
JSON_SYNTAX = "JsonSyntax"  # the file is not JSON at all
DUPLICATE_KEY = "DuplicateKey"  # a key twice in one object: JSON keeps only the last silently
WRONG_TYPE = "WrongType"  # a value of the wrong JSON type
MISSING_KEY = "MissingKey"  # a required key is absent
UNKNOWN_KEY = "UnknownKey"  # a key the CA would silently ignore
INVALID_VALUE = "InvalidValue"  # right type, value the CA refuses, crashes on or silently changes
SAN_DROPPED = "SanDropped"  # a SAN the CA would silently drop
CSR_MISSING = "CsrMissing"  # csr_file names no file in csrs/
CSR_UNREADABLE = "CsrUnreadable"  # not a PEM CSR
CSR_SIGNATURE = "CsrSignatureInvalid"  # no proof of possession of the key
KEY_NOT_ALLOWED = "KeyNotAllowed"  # key type or size outside the allowed list
CSR_NO_COMMON_NAME = "CsrNoCommonName"  # the CSR has no CN: the CA refuses it
FILE_UNREADABLE = "FileUnreadable"  # a directory, unreadable, not UTF-8 text, too large
COMMON_NAME_MISMATCH = "CommonNameMismatch"  # entry and CSR name different subjects
DUPLICATE = "Duplicate"  # the same CSR, key, or revocation twice
UNREFERENCED_CSR = "UnreferencedCsr"  # a CSR no entry uses (warning)
CA_BUNDLE = "CaBundleInvalid"  # the environment's ca-bundle.pem is not a CA bundle


@dataclass(frozen=True)
class Problem:
    file: str  # path as given by the user, so editors and CI can open it
    message: str
    code: str
    severity: str = ERROR
    line: int | None = None
    col: int | None = None
    field: str | None = None  # e.g. "[0].sans[1]"

    @property
    def is_error(self) -> bool:
        return self.severity == ERROR

    def identity(self) -> tuple[str, str, str | None, str]:
        """What makes two findings the same across edits that move lines around."""
        return (self.file, self.code, self.field, self.message)

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "col": self.col,
            "severity": self.severity,
            "code": self.code,
            "field": self.field,
            "message": self.message,
        }


def has_errors(problems: list[Problem]) -> bool:
    return any(p.is_error for p in problems)
