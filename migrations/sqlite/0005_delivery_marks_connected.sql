-- A logged delivery marks its repository connected inside the same statement: one round trip
-- less per delivery on the webhook hot path (SQLite serialises writers).
CREATE TRIGGER webhook_deliveries_mark_connected AFTER INSERT ON webhook_deliveries
BEGIN
    UPDATE repos SET webhook_last_delivery_at = NEW.received_at, webhook_last_forge = NEW.forge
    WHERE id = NEW.repo_id;
END;
