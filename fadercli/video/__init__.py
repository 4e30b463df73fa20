"""Video: the faces of a clip edited frame by frame without flicker, on a Chain of models.

    tracking.py  faces followed across frames, landmarks smoothed over time, fades where a face is lost
    scan.py      pass 1: follow the faces, and estimate each track's own values once
    editing.py   pass 2: edit each tracked face at its track's values, frames streaming to the encoder
    stages.py    the threads pass 2 runs on: decoding ahead, encoding behind, channels bounded in bytes
    live.py      a camera's frames edited one at a time as they come, by the same tracking and stage

A clip is read twice and never held: the first pass follows the faces (a full detection every few
frames and on scene cuts, a quick second look around each tracked face in between) and keeps only
landmarks and a few crops per face; the second pass decodes again, edits each tracked face with
its track's smoothed framing and values, and streams the frames to the encoder. Reading and
writing clips is media/ (clips.py, encoder.py); which files are clips, media/formats.py.
"""
