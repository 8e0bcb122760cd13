-- Clips are priced by the delivered second: a video job's hold records the credits per
-- second and the seconds one clip was asked for (the most a clip is charged for), and its
-- settlement the seconds charged. Image jobs leave all three null.
ALTER TABLE transfers
    ADD COLUMN second_price bigint CHECK (second_price > 0),
    ADD COLUMN clip_seconds int CHECK (clip_seconds > 0),
    ADD COLUMN delivered_seconds int CHECK (delivered_seconds >= 0),
    ADD CONSTRAINT transfers_clip_priced_whole CHECK ((second_price IS NULL) = (clip_seconds IS NULL));
