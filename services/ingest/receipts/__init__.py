"""Receipts: what a signed job receipt says and how it is signed (document), issuing and
reading them with the keys they were signed with (issuing), and checking every issued
receipt against the record (replay)."""
