"""Pure array functions: accuracy, Decision Margin, Option Frequency; bootstrap intervals and tests."""
