-- The registration signature (Ed25519 by sign_key over auth::register_bytes
-- of both keys), handed to clients with the keys so they can check that the
-- directory did not swap the sealing key. Rows registered before this
-- migration have none: clients refuse such keys until the device registers
-- again.
ALTER TABLE devices ADD COLUMN reg_sig TEXT;
