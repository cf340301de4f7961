"""kpremia.envs"""
