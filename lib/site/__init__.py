"""What the chapters show: Altair plots, tables for people, the claims ledger, the chapter runner, progress bars."""
