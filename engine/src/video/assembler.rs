//! Placeholder: filled in by the assembler work.
