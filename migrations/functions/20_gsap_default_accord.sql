-- Every tenant starts with the accord "default" (SPEC.md, Accords).
CREATE OR REPLACE FUNCTION gsap_default_accord() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO accords (tenant_id, name, body) VALUES (NEW.tenant_id, 'default',
        '{"name": "default", "ttl_max_seconds": 900, "session_mode_allowed": true,
          "capability_mask": "0x0000ffff", "elevation_required": "0x00000000",
          "corpus_allow": [], "environment_commitment": null, "posture_level": 3,
          "shell_class": "Application", "signed_receipts": false}')
    ON CONFLICT DO NOTHING;
    RETURN NEW;
END $$;

CREATE OR REPLACE TRIGGER tenants_default_accord AFTER INSERT ON tenants
    FOR EACH ROW EXECUTE FUNCTION gsap_default_accord();
