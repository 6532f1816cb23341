"""What the three framework callbacks share: :mod:`.session` (one tracker's life inside a
training run, with the step cadence, stop, resume and summary rules) and :mod:`.hooks` (the
workarounds for frameworks that give a callback no handle on its caller or its errors)."""
